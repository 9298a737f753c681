//! Shared nothing; see the examples.

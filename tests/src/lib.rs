//! Integration tests live in `tests/`; shared helpers in `support/`.

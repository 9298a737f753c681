//! [`TaskArgs`]: a task's arguments, kept as the compact JSON text they serialize to.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// The longest text kept without an allocation (`{"user_id":1234567890}` fits).
const INLINE: usize = 22;

/// The capacity above which a thread's encoding buffer is not kept for the next encoding.
const KEPT_BUFFER: usize = 64 * 1024;

/// A task's arguments, kept as the compact JSON text they serialize to: one allocation shared by
/// every copy of the record (none for a text of up to 22 bytes), rather than a tree of JSON
/// values. A store writes the text as it is.
///
/// Serializes and deserializes as the JSON value it holds (not as a string), compares by its
/// text, and prints as its text.
///
/// # Examples
///
/// ```
/// use taskflow::TaskArgs;
///
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct SendWelcome {
///     user_id: u64,
///     email: String,
/// }
///
/// let args = TaskArgs::encode(&SendWelcome { user_id: 7, email: "ada@example.com".into() })?;
/// assert_eq!(args.as_str(), r#"{"user_id":7,"email":"ada@example.com"}"#);
/// assert_eq!(args.decode::<SendWelcome>()?.user_id, 7);
/// assert_eq!(args.decode::<serde_json::Value>()?["email"], "ada@example.com");
///
/// // In a record's JSON the arguments are the object itself.
/// let json = serde_json::json!({ "args": args });
/// assert_eq!(json["args"]["user_id"], 7);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone)]
pub struct TaskArgs(Repr);

#[derive(Clone)]
enum Repr {
    /// A short text, in place.
    Inline { len: u8, bytes: [u8; INLINE] },
    /// A longer one, shared by every copy.
    Shared(Arc<[u8]>),
}

thread_local! {
    /// Where each thread serializes arguments before keeping their text: reused, so that
    /// encoding allocates only the text it keeps.
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl TaskArgs {
    /// Serializes `value` to compact JSON.
    ///
    /// # Errors
    ///
    /// When `value` does not serialize to JSON (a map with keys that are not strings, say, or
    /// a `Serialize` implementation that fails).
    ///
    /// # Examples
    ///
    /// ```
    /// let args = taskflow::TaskArgs::encode(&serde_json::json!({ "n": 12 }))?;
    /// assert_eq!(args.as_str(), r#"{"n":12}"#);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Self> {
        BUFFER.with(|buffer| match buffer.try_borrow_mut() {
            Ok(mut buffer) => {
                buffer.clear();
                let encoded =
                    serde_json::to_writer(&mut *buffer, value).map(|()| Self::keep(&buffer));
                if buffer.capacity() > KEPT_BUFFER {
                    *buffer = Vec::new();
                }
                encoded
            }
            // Encoding from inside a `Serialize` implementation that is itself being encoded.
            Err(_) => serde_json::to_vec(value).map(|text| Self::keep(&text)),
        })
    }

    /// Keeps `text`, which must be the UTF-8 of one JSON value (as serde_json writes it): in
    /// place when it fits. It is checked to be UTF-8 when it is read, not on this path of every
    /// task.
    fn keep(text: &[u8]) -> Self {
        let mut bytes = [0; INLINE];
        match (u8::try_from(text.len()), bytes.get_mut(..text.len())) {
            (Ok(len), Some(inline)) => {
                inline.copy_from_slice(text);
                Self(Repr::Inline { len, bytes })
            }
            _ => Self(Repr::Shared(Arc::from(text))),
        }
    }

    /// Keeps `text`, which must be one JSON value.
    pub(crate) fn from_json_text(text: &str) -> Self {
        Self::keep(text.as_bytes())
    }

    /// The JSON text's bytes, unchecked.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Shared(text) => text,
        }
    }

    /// The JSON text.
    ///
    /// # Examples
    ///
    /// ```
    /// let args = taskflow::TaskArgs::from(serde_json::json!({ "to": "ada@example.com" }));
    /// assert_eq!(args.as_str(), r#"{"to":"ada@example.com"}"#);
    /// ```
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes())
            .expect("arguments are kept from the UTF-8 of serde_json or of a `str`")
    }

    /// Deserializes the arguments as `T`: the task's argument struct, or a
    /// [`serde_json::Value`].
    ///
    /// # Errors
    ///
    /// When the JSON does not decode as a `T`.
    ///
    /// # Examples
    ///
    /// ```
    /// let args = taskflow::TaskArgs::from(serde_json::json!({ "n": 12 }));
    /// let value: serde_json::Value = args.decode()?;
    /// assert_eq!(value["n"], 12);
    /// assert!(args.decode::<Vec<u8>>().is_err());
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn decode<T: DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_slice(self.as_bytes())
    }
}

impl From<Value> for TaskArgs {
    /// The compact text of `value`.
    ///
    /// # Examples
    ///
    /// ```
    /// let args = taskflow::TaskArgs::from(serde_json::json!([1, 2]));
    /// assert_eq!(args.as_str(), "[1,2]");
    /// ```
    fn from(value: Value) -> Self {
        Self::from(&value)
    }
}

impl From<&Value> for TaskArgs {
    /// The compact text of `value`.
    ///
    /// # Examples
    ///
    /// ```
    /// let value = serde_json::json!({ "a": null });
    /// assert_eq!(taskflow::TaskArgs::from(&value).as_str(), r#"{"a":null}"#);
    /// ```
    fn from(value: &Value) -> Self {
        Self::from_json_text(&value.to_string())
    }
}

impl PartialEq for TaskArgs {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for TaskArgs {}

impl fmt::Debug for TaskArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TaskArgs").field(&self.as_str()).finish()
    }
}

impl fmt::Display for TaskArgs {
    /// The JSON text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for TaskArgs {
    /// The JSON value the text holds, in any format.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        self.decode::<Value>()
            .map_err(S::Error::custom)?
            .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for TaskArgs {
    /// Any JSON value, kept as its compact text.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn short_text_is_kept_in_place_and_longer_text_shared() {
        let short = TaskArgs::encode(&json!({ "user_id": 1_234_567_890 })).expect("encodes");
        assert_eq!(short.as_str(), r#"{"user_id":1234567890}"#);
        assert!(matches!(short.0, Repr::Inline { .. }));
        let long = TaskArgs::encode(&json!({ "user_id": 12_345_678_901_u64 })).expect("encodes");
        assert!(matches!(long.0, Repr::Shared(_)));
        let copy = long.clone();
        match (&long.0, &copy.0) {
            (Repr::Shared(a), Repr::Shared(b)) => assert!(Arc::ptr_eq(a, b)),
            _ => panic!("both shared"),
        }
        assert_eq!(copy, long);
        assert_ne!(copy, short);
    }

    #[test]
    fn round_trips_through_json_as_the_value_it_holds() {
        let args = TaskArgs::from(json!({ "to": "a@b.c", "n": u64::MAX, "nested": [1, {}] }));
        let text = serde_json::to_string(&json!({ "args": args })).expect("serializes");
        assert_eq!(
            text,
            r#"{"args":{"n":18446744073709551615,"nested":[1,{}],"to":"a@b.c"}}"#
        );
        let back: TaskArgs = serde_json::from_str(r#" { "n" : 1 } "#).expect("deserializes");
        assert_eq!(back.as_str(), r#"{"n":1}"#);
    }

    #[test]
    fn a_failing_serialize_is_an_error_and_the_buffer_stays_usable() {
        let mut map = std::collections::BTreeMap::new();
        map.insert((1, 2), "a tuple key is not a JSON key");
        assert!(TaskArgs::encode(&map).is_err());
        assert_eq!(
            TaskArgs::encode(&[1, 2]).expect("encodes").as_str(),
            "[1,2]"
        );
    }

    #[test]
    fn encoding_inside_an_encoding_uses_a_buffer_of_its_own() {
        struct Nested;
        impl Serialize for Nested {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                use serde::ser::Error as _;
                let inner = TaskArgs::encode(&"inner").map_err(S::Error::custom)?;
                serializer.serialize_str(inner.as_str())
            }
        }
        let args = TaskArgs::encode(&Nested).expect("encodes");
        assert_eq!(args.decode::<String>().expect("a string"), r#""inner""#);
    }

    #[test]
    fn a_large_encoding_does_not_keep_its_buffer() {
        let large = "x".repeat(KEPT_BUFFER * 2);
        let args = TaskArgs::encode(&large).expect("encodes");
        assert_eq!(args.as_str().len(), large.len() + 2);
        BUFFER.with(|buffer| assert!(buffer.borrow().capacity() <= KEPT_BUFFER));
    }
}

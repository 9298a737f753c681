//! [`JsonText`]: a JSON value kept as its compact text, as a record keeps a task's arguments
//! and its result.

use std::cell::RefCell;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// The longest text kept without an allocation (`{"user_id":1234567890}` fits).
const INLINE: usize = 22;

/// The size of a value (in memory) below which its text is written in place first.
const SMALL_VALUE: usize = 8;

/// The capacity above which a thread's encoding buffer is not kept for the next encoding.
const KEPT_BUFFER: usize = 64 * 1024;

/// A JSON value kept as its compact text: a task's arguments ([`TaskRecord::args`]) and its
/// result ([`TaskRecord::result`]). The text is one allocation shared by every copy of the
/// record (none for a text of up to 22 bytes), rather than a tree of JSON values, and a store
/// writes it as it is.
///
/// Serializes and deserializes as the JSON value it holds (not as a string), prints as its
/// text, and compares as the value it holds: `{"a":1,"b":2}` equals `{"b":2,"a":1}`, and a
/// [`serde_json::Value`] compares with it directly.
///
/// [`TaskRecord::args`]: crate::TaskRecord::args
/// [`TaskRecord::result`]: crate::TaskRecord::result
///
/// # Examples
///
/// ```
/// use taskflow::JsonText;
///
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct SendWelcome {
///     user_id: u64,
///     email: String,
/// }
///
/// let args = JsonText::encode(&SendWelcome { user_id: 7, email: "ada@example.com".into() })?;
/// assert_eq!(args.as_str(), r#"{"user_id":7,"email":"ada@example.com"}"#);
/// assert_eq!(args.decode::<SendWelcome>()?.user_id, 7);
/// assert_eq!(args.decode::<serde_json::Value>()?["email"], "ada@example.com");
/// assert_eq!(args, serde_json::json!({ "email": "ada@example.com", "user_id": 7 }));
///
/// // In a record's JSON the arguments are the object itself.
/// let json = serde_json::json!({ "args": args });
/// assert_eq!(json["args"]["user_id"], 7);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone)]
pub struct JsonText(Repr);

#[derive(Clone)]
enum Repr {
    /// A short text, in place.
    Inline { len: u8, bytes: [u8; INLINE] },
    /// A longer one, shared by every copy.
    Shared(Arc<[u8]>),
}

/// Writes a text in place, and fails once it no longer fits.
#[derive(Default)]
struct InlineWriter {
    len: u8,
    bytes: [u8; INLINE],
}

impl InlineWriter {
    fn into_text(self) -> JsonText {
        JsonText(Repr::Inline {
            len: self.len,
            bytes: self.bytes,
        })
    }
}

impl std::io::Write for InlineWriter {
    fn write(&mut self, text: &[u8]) -> std::io::Result<usize> {
        let start = usize::from(self.len);
        let end = start + text.len();
        match (self.bytes.get_mut(start..end), u8::try_from(end)) {
            (Some(place), Ok(len)) => {
                place.copy_from_slice(text);
                self.len = len;
                Ok(text.len())
            }
            _ => Err(std::io::ErrorKind::WriteZero.into()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

thread_local! {
    /// Where each thread serializes values before keeping their text: reused, so that
    /// encoding allocates only the text it keeps.
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl JsonText {
    /// The text `null`: the result of a task that returns `()`.
    ///
    /// # Examples
    ///
    /// ```
    /// let null = taskflow::JsonText::null();
    /// assert_eq!(null.as_str(), "null");
    /// assert_eq!(null, serde_json::Value::Null);
    /// ```
    pub const fn null() -> Self {
        let mut bytes = [0; INLINE];
        bytes[0] = b'n';
        bytes[1] = b'u';
        bytes[2] = b'l';
        bytes[3] = b'l';
        Self(Repr::Inline { len: 4, bytes })
    }

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
    /// let args = taskflow::JsonText::encode(&serde_json::json!({ "n": 12 }))?;
    /// assert_eq!(args.as_str(), r#"{"n":12}"#);
    /// assert_eq!(taskflow::JsonText::encode(&[1, 2])?.as_str(), "[1,2]");
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Self> {
        // A value of a few bytes (a number, a flag, `()`: most results) is written in place,
        // without the thread's buffer and a copy out of it.
        if std::mem::size_of_val(value) <= SMALL_VALUE {
            let mut inline = InlineWriter::default();
            match serde_json::to_writer(&mut inline, value) {
                Ok(()) => return Ok(inline.into_text()),
                // Its text did not fit after all (a pointer to a larger value, say).
                Err(error) if error.is_io() => {}
                Err(error) => return Err(error),
            }
        }
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
    /// let args = taskflow::JsonText::from(serde_json::json!({ "to": "ada@example.com" }));
    /// assert_eq!(args.as_str(), r#"{"to":"ada@example.com"}"#);
    /// ```
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes())
            .expect("the text is kept from the UTF-8 of serde_json or of a `str`")
    }

    /// Deserializes the value as `T`: the task's argument struct or result type, or a
    /// [`serde_json::Value`].
    ///
    /// # Errors
    ///
    /// When the JSON does not decode as a `T`.
    ///
    /// # Examples
    ///
    /// ```
    /// let args = taskflow::JsonText::from(serde_json::json!({ "n": 12 }));
    /// let value: serde_json::Value = args.decode()?;
    /// assert_eq!(value["n"], 12);
    /// assert!(args.decode::<Vec<u8>>().is_err());
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn decode<T: DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_slice(self.as_bytes())
    }

    /// The value the text holds, for comparisons.
    fn value(&self) -> Option<Value> {
        self.decode().ok()
    }
}

impl FromStr for JsonText {
    type Err = serde_json::Error;

    /// Parses one JSON value and keeps its compact text.
    ///
    /// # Examples
    ///
    /// ```
    /// let text: taskflow::JsonText = r#" { "n" : [1, 2] } "#.parse()?;
    /// assert_eq!(text.as_str(), r#"{"n":[1,2]}"#);
    /// assert!("{".parse::<taskflow::JsonText>().is_err());
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    fn from_str(text: &str) -> serde_json::Result<Self> {
        serde_json::from_str::<Value>(text).map(Self::from)
    }
}

impl From<Value> for JsonText {
    /// The compact text of `value`.
    ///
    /// # Examples
    ///
    /// ```
    /// let args = taskflow::JsonText::from(serde_json::json!([1, 2]));
    /// assert_eq!(args.as_str(), "[1,2]");
    /// ```
    fn from(value: Value) -> Self {
        Self::from(&value)
    }
}

impl From<&Value> for JsonText {
    /// The compact text of `value`.
    ///
    /// # Examples
    ///
    /// ```
    /// let value = serde_json::json!({ "a": null });
    /// assert_eq!(taskflow::JsonText::from(&value).as_str(), r#"{"a":null}"#);
    /// ```
    fn from(value: &Value) -> Self {
        Self::from_json_text(&value.to_string())
    }
}

impl PartialEq for JsonText {
    /// Whether both hold the same JSON value: the same text, or texts that differ only in the
    /// order of an object's keys.
    ///
    /// # Examples
    ///
    /// ```
    /// use taskflow::JsonText;
    /// let a: JsonText = r#"{"url":"/r/1.pdf","pages":2}"#.parse()?;
    /// let b: JsonText = r#"{ "pages": 2, "url": "/r/1.pdf" }"#.parse()?;
    /// assert_eq!(a, b);
    /// assert_ne!(a, JsonText::null());
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
            || matches!((self.value(), other.value()), (Some(a), Some(b)) if a == b)
    }
}

impl Eq for JsonText {}

impl PartialEq<Value> for JsonText {
    /// Whether this holds `other`.
    ///
    /// # Examples
    ///
    /// ```
    /// let result = taskflow::JsonText::encode(&64)?;
    /// assert_eq!(result, serde_json::json!(64));
    /// assert_eq!(serde_json::json!(64), result);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    fn eq(&self, other: &Value) -> bool {
        self.value().is_some_and(|value| value == *other)
    }
}

impl PartialEq<JsonText> for Value {
    /// Whether `other` holds this value.
    ///
    /// # Examples
    ///
    /// See [`JsonText`]'s `PartialEq<Value>`.
    fn eq(&self, other: &JsonText) -> bool {
        other == self
    }
}

impl fmt::Debug for JsonText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("JsonText").field(&self.as_str()).finish()
    }
}

impl fmt::Display for JsonText {
    /// The JSON text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for JsonText {
    /// The JSON value the text holds, in any format.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        self.decode::<Value>()
            .map_err(S::Error::custom)?
            .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for JsonText {
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
        let short = JsonText::encode(&json!({ "user_id": 1_234_567_890 })).expect("encodes");
        assert_eq!(short.as_str(), r#"{"user_id":1234567890}"#);
        assert!(matches!(short.0, Repr::Inline { .. }));
        let long = JsonText::encode(&json!({ "user_id": 12_345_678_901_u64 })).expect("encodes");
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
    fn a_small_value_is_written_in_place_and_one_pointing_to_more_falls_back() {
        let number = JsonText::encode(&u64::MAX).expect("encodes");
        assert_eq!(number.as_str(), "18446744073709551615");
        assert!(matches!(number.0, Repr::Inline { .. }));
        // Eight bytes in memory, forty-two in JSON.
        let boxed = Box::new("x".repeat(40));
        assert_eq!(std::mem::size_of_val(&boxed), SMALL_VALUE);
        let long = JsonText::encode(&boxed).expect("encodes");
        assert_eq!(long.decode::<String>().expect("a string"), *boxed);
        assert!(matches!(long.0, Repr::Shared(_)));
        // A serializer's own error is returned, not taken for text that did not fit.
        struct Refuses;
        impl Serialize for Refuses {
            fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("refused"))
            }
        }
        let error = JsonText::encode(&Refuses).expect_err("fails");
        assert!(error.to_string().contains("refused"), "{error}");
    }

    #[test]
    fn compares_as_the_value_it_holds() {
        #[derive(Serialize)]
        struct Receipt {
            url: &'static str,
            pages: u32,
        }
        let receipt = JsonText::encode(&Receipt {
            url: "/r/1.pdf",
            pages: 2,
        })
        .expect("encodes");
        let expected = json!({ "url": "/r/1.pdf", "pages": 2 });
        // The struct keeps its fields' order, the JSON map sorts its keys: different texts.
        assert_ne!(receipt.as_str(), JsonText::from(&expected).as_str());
        assert_eq!(receipt, JsonText::from(&expected));
        assert_eq!(receipt, expected);
        assert_eq!(expected, receipt);
        assert_ne!(receipt, json!({ "url": "/r/1.pdf", "pages": 3 }));
        assert_ne!(JsonText::from(json!(2)), JsonText::from(json!(2.0)));
        assert_eq!(JsonText::null(), Value::Null);
        assert!(matches!(JsonText::null().0, Repr::Inline { len: 4, .. }));
        // Two texts that hold no JSON value are not equal for it.
        let (broken, other) = (JsonText::from_json_text("{"), JsonText::from_json_text("["));
        assert_ne!(broken, other);
    }

    #[test]
    fn round_trips_through_json_as_the_value_it_holds() {
        let args = JsonText::from(json!({ "to": "a@b.c", "n": u64::MAX, "nested": [1, {}] }));
        let text = serde_json::to_string(&json!({ "args": args })).expect("serializes");
        assert_eq!(
            text,
            r#"{"args":{"n":18446744073709551615,"nested":[1,{}],"to":"a@b.c"}}"#
        );
        let back: JsonText = serde_json::from_str(r#" { "n" : 1 } "#).expect("deserializes");
        assert_eq!(back.as_str(), r#"{"n":1}"#);
    }

    #[test]
    fn a_failing_serialize_is_an_error_and_the_buffer_stays_usable() {
        let mut map = std::collections::BTreeMap::new();
        map.insert((1, 2), "a tuple key is not a JSON key");
        assert!(JsonText::encode(&map).is_err());
        assert_eq!(
            JsonText::encode(&[1, 2]).expect("encodes").as_str(),
            "[1,2]"
        );
    }

    #[test]
    fn encoding_inside_an_encoding_uses_a_buffer_of_its_own() {
        struct Nested;
        impl Serialize for Nested {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                use serde::ser::Error as _;
                let inner = JsonText::encode(&"inner").map_err(S::Error::custom)?;
                serializer.serialize_str(inner.as_str())
            }
        }
        let args = JsonText::encode(&Nested).expect("encodes");
        assert_eq!(args.decode::<String>().expect("a string"), r#""inner""#);
    }

    #[test]
    fn a_large_encoding_does_not_keep_its_buffer() {
        let large = "x".repeat(KEPT_BUFFER * 2);
        let args = JsonText::encode(&large).expect("encodes");
        assert_eq!(args.as_str().len(), large.len() + 2);
        BUFFER.with(|buffer| assert!(buffer.borrow().capacity() <= KEPT_BUFFER));
    }
}

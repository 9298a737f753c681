//! [`SharedStr`]: the immutable, cheaply cloned strings of a task record (its name, queue,
//! instance, source and executor), which every record of a kind shares.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An immutable string that is cheap to clone: a `&'static str` (a declared task's name, a
/// queue named in its options) or a shared `Arc<str>` (an instance id, a name read back from a
/// store). Compares, hashes, orders, prints and serializes as the text it holds, and derefs to
/// `&str`.
///
/// # Examples
///
/// ```
/// use taskflow::SharedStr;
///
/// let name = SharedStr::from_static("send_welcome");
/// let copy = name.clone(); // no allocation
/// assert_eq!(copy, "send_welcome");
/// assert!(name.starts_with("send"));
/// assert_eq!(SharedStr::from(String::from("reports")).as_str(), "reports");
/// assert_eq!(serde_json::to_string(&name).unwrap(), "\"send_welcome\"");
/// ```
#[derive(Clone)]
pub struct SharedStr(Repr);

#[derive(Clone)]
enum Repr {
    Static(&'static str),
    Shared(Arc<str>),
}

impl SharedStr {
    /// Wraps a static string without allocating.
    ///
    /// # Examples
    ///
    /// ```
    /// const DEFAULT: taskflow::SharedStr = taskflow::SharedStr::from_static("default");
    /// assert_eq!(DEFAULT, "default");
    /// ```
    pub const fn from_static(text: &'static str) -> Self {
        Self(Repr::Static(text))
    }

    /// The one static copy of `text`, made on its first use and kept for the life of the
    /// process: for a string that every record of a manager carries (its instance id), so that
    /// copying it never touches a reference count shared by the threads running tasks.
    pub(crate) fn interned(text: &str) -> Self {
        static INTERNED: parking_lot::Mutex<BTreeSet<&'static str>> =
            parking_lot::Mutex::new(BTreeSet::new());
        let mut interned = INTERNED.lock();
        if let Some(kept) = interned.get(text) {
            return Self::from_static(kept);
        }
        let kept: &'static str = Box::leak(text.to_owned().into_boxed_str());
        interned.insert(kept);
        Self::from_static(kept)
    }

    /// The text.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(taskflow::SharedStr::from("q").as_str(), "q");
    /// ```
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Static(text) => text,
            Repr::Shared(text) => text,
        }
    }
}

impl Default for SharedStr {
    fn default() -> Self {
        Self::from_static("")
    }
}

impl Deref for SharedStr {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for SharedStr {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for SharedStr {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for SharedStr {
    /// Copies `text` into a new shared string (use [`SharedStr::from_static`] for a literal).
    fn from(text: &str) -> Self {
        Self(Repr::Shared(Arc::from(text)))
    }
}

impl From<String> for SharedStr {
    fn from(text: String) -> Self {
        Self(Repr::Shared(Arc::from(text)))
    }
}

impl From<&String> for SharedStr {
    fn from(text: &String) -> Self {
        Self::from(text.as_str())
    }
}

impl From<Arc<str>> for SharedStr {
    fn from(text: Arc<str>) -> Self {
        Self(Repr::Shared(text))
    }
}

impl From<SharedStr> for String {
    fn from(text: SharedStr) -> Self {
        text.as_str().to_owned()
    }
}

impl PartialEq for SharedStr {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for SharedStr {}

impl PartialEq<str> for SharedStr {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for SharedStr {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for SharedStr {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialEq<SharedStr> for str {
    fn eq(&self, other: &SharedStr) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<SharedStr> for &str {
    fn eq(&self, other: &SharedStr) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<SharedStr> for String {
    fn eq(&self, other: &SharedStr) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialOrd for SharedStr {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SharedStr {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for SharedStr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for SharedStr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SharedStr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_and_shared_texts_are_the_same_value() {
        let a = SharedStr::from_static("reports");
        let b = SharedStr::from(String::from("reports"));
        assert_eq!(a, b);
        let mut set = std::collections::HashSet::new();
        set.insert(a.clone());
        assert!(set.contains("reports"), "hashes as its text");
        assert!(set.contains(&b));
        assert_eq!(a.cmp(&SharedStr::from("z")), Ordering::Less);
        assert_eq!(format!("{a} {a:?}"), "reports \"reports\"");
        let back: SharedStr = serde_json::from_str("\"reports\"").expect("a JSON string");
        assert_eq!(back, a);
        assert_eq!(String::from(b), "reports");
    }

    #[test]
    fn an_interned_text_is_kept_once() {
        let first = SharedStr::interned("web-1");
        let second = SharedStr::interned(&String::from("web-1"));
        assert_eq!(first, "web-1");
        match (first.0, second.0) {
            (Repr::Static(a), Repr::Static(b)) => assert!(std::ptr::eq(a, b)),
            _ => panic!("interned texts are static"),
        }
    }
}

//! [`Tags`]: the key/value tags given to a task at enqueue, shared by every copy of its record.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The map every task without tags shares.
static NONE: BTreeMap<String, String> = BTreeMap::new();

/// Key/value tags given to a task at enqueue: a map from key to value, shared by every copy of
/// the record (and by its running attempt's [`TaskContext`](crate::TaskContext)), so that
/// copying a record or starting an attempt copies a pointer, not the map. A task without tags
/// holds no allocation.
///
/// Reads go through the map it derefs to ([`BTreeMap<String, String>`]); [`insert`](Self::insert),
/// [`extend`](Extend::extend) and [`to_mut`](Self::to_mut) copy a map that another record shares
/// before changing it.
/// Serializes as a JSON object.
///
/// # Examples
///
/// ```
/// use taskflow::Tags;
///
/// let mut tags: Tags = [("tenant", "acme"), ("source", "signup")].into_iter().collect();
/// let copy = tags.clone(); // no allocation
/// tags.insert("tenant", "globex");
/// assert_eq!(copy["tenant"], "acme");
/// assert_eq!(tags.get("tenant").map(String::as_str), Some("globex"));
/// assert_eq!(serde_json::to_string(&copy)?, r#"{"source":"signup","tenant":"acme"}"#);
/// assert!(Tags::default().is_empty());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct Tags(Option<Arc<BTreeMap<String, String>>>);

impl Tags {
    /// No tags.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(taskflow::Tags::new().is_empty());
    /// ```
    pub const fn new() -> Self {
        Self(None)
    }

    /// Sets tag `key` to `value`; returns the value it had.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut tags = taskflow::Tags::new();
    /// assert_eq!(tags.insert("tenant", "acme"), None);
    /// assert_eq!(tags.insert("tenant", "globex").as_deref(), Some("acme"));
    /// ```
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) -> Option<String> {
        self.to_mut().insert(key.into(), value.into())
    }

    /// The map, to change in any way: copied first if another record shares it.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut tags: taskflow::Tags = [("tenant", "acme"), ("debug", "1")].into_iter().collect();
    /// let copy = tags.clone();
    /// tags.to_mut().remove("debug");
    /// assert_eq!(tags.len(), 1);
    /// assert_eq!(copy.len(), 2);
    /// ```
    pub fn to_mut(&mut self) -> &mut BTreeMap<String, String> {
        Arc::make_mut(self.0.get_or_insert_with(Default::default))
    }
}

impl Deref for Tags {
    type Target = BTreeMap<String, String>;

    fn deref(&self) -> &Self::Target {
        self.0.as_deref().unwrap_or(&NONE)
    }
}

impl PartialEq for Tags {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for Tags {}

impl<K: Into<String>, V: Into<String>> Extend<(K, V)> for Tags {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, tags: I) {
        let mut tags = tags.into_iter().peekable();
        if tags.peek().is_some() {
            self.to_mut()
                .extend(tags.map(|(key, value)| (key.into(), value.into())));
        }
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Tags {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(tags: I) -> Self {
        let mut collected = Self::new();
        collected.extend(tags);
        collected
    }
}

impl From<BTreeMap<String, String>> for Tags {
    /// The tags of `map` (none when it is empty).
    ///
    /// # Examples
    ///
    /// ```
    /// let map = std::collections::BTreeMap::from([("k".to_owned(), "v".to_owned())]);
    /// assert_eq!(taskflow::Tags::from(map)["k"], "v");
    /// ```
    fn from(map: BTreeMap<String, String>) -> Self {
        Self((!map.is_empty()).then(|| Arc::new(map)))
    }
}

impl IntoIterator for Tags {
    type Item = (String, String);
    type IntoIter = std::collections::btree_map::IntoIter<String, String>;

    /// The tags as owned pairs, copied if another record shares them.
    fn into_iter(self) -> Self::IntoIter {
        self.0
            .map(Arc::unwrap_or_clone)
            .unwrap_or_default()
            .into_iter()
    }
}

impl<'a> IntoIterator for &'a Tags {
    type Item = (&'a String, &'a String);
    type IntoIter = std::collections::btree_map::Iter<'a, String, String>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl fmt::Debug for Tags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl Serialize for Tags {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Tags {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BTreeMap::deserialize(deserializer).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_share_one_map_until_one_changes() {
        let tags: Tags = [("a", "1")].into_iter().collect();
        let mut copy = tags.clone();
        match (&tags.0, &copy.0) {
            (Some(a), Some(b)) => assert!(Arc::ptr_eq(a, b)),
            _ => panic!("both hold the map"),
        }
        copy.insert("b", "2");
        assert_eq!(tags.len(), 1);
        assert_eq!(copy.len(), 2);
        assert_ne!(tags, copy);
    }

    #[test]
    fn no_tags_hold_no_map_and_equal_an_emptied_one() {
        let mut tags = Tags::new();
        tags.extend(std::iter::empty::<(String, String)>());
        assert!(tags.0.is_none());
        let emptied: Tags = BTreeMap::new().into();
        assert!(emptied.0.is_none());
        let back: Tags = serde_json::from_str("{}").expect("a map");
        assert_eq!(back, Tags::default());
        assert_eq!(serde_json::to_string(&back).expect("serializes"), "{}");
    }

    #[test]
    fn owned_iteration_copies_only_a_shared_map() {
        let tags: Tags = [("k", "v")].into_iter().collect();
        let copy = tags.clone();
        let pairs: Vec<_> = tags.into_iter().collect();
        assert_eq!(pairs, [("k".to_owned(), "v".to_owned())]);
        assert_eq!(copy["k"], "v");
    }
}

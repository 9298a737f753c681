//! [`Tags`]: the key/value tags given to a task at enqueue, kept as one shared text that every
//! copy of its record points to.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::iter::FusedIterator;
use std::ops::Index;
use std::sync::Arc;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Key/value tags given to a task at enqueue, with unique keys, in key order.
///
/// A task's tags are one block of memory, shared by every copy of its record (and by its
/// running attempt's [`TaskContext`](crate::TaskContext)), so copying a record or starting an
/// attempt copies a pointer. A task without tags holds no allocation. Tags are few and small,
/// so lookups scan them in order.
///
/// Read with [`get`](Self::get), [`contains_key`](Self::contains_key), indexing and
/// [`iter`](Self::iter); change with [`insert`](Self::insert), [`remove`](Self::remove) and
/// [`extend`](Extend::extend), which write a new block and leave other copies as they were.
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
/// assert_eq!(&copy["tenant"], "acme");
/// assert_eq!(tags.get("tenant"), Some("globex"));
/// assert_eq!(serde_json::to_string(&copy)?, r#"{"source":"signup","tenant":"acme"}"#);
/// assert!(Tags::default().is_empty());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Tags(
    /// Each tag in key order as `{key length}:{value length}:{key}{value}`, lengths in bytes
    /// and in decimal; `None` for no tags.
    Option<Arc<str>>,
);

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

    /// Whether there are no tags.
    ///
    /// # Examples
    ///
    /// ```
    /// let tags: taskflow::Tags = [("tenant", "acme")].into_iter().collect();
    /// assert!(!tags.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// How many tags there are.
    ///
    /// # Examples
    ///
    /// ```
    /// let tags: taskflow::Tags = [("a", "1"), ("b", "2"), ("a", "3")].into_iter().collect();
    /// assert_eq!(tags.len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// The value of tag `key`.
    ///
    /// # Examples
    ///
    /// ```
    /// let tags: taskflow::Tags = [("tenant", "acme")].into_iter().collect();
    /// assert_eq!(tags.get("tenant"), Some("acme"));
    /// assert_eq!(tags.get("source"), None);
    /// ```
    pub fn get(&self, key: &str) -> Option<&str> {
        self.iter()
            .find_map(|(k, value)| (k == key).then_some(value))
    }

    /// Whether there is a tag `key`.
    ///
    /// # Examples
    ///
    /// ```
    /// let tags: taskflow::Tags = [("debug", "")].into_iter().collect();
    /// assert!(tags.contains_key("debug"));
    /// ```
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The tags as `(key, value)` pairs, in key order.
    ///
    /// # Examples
    ///
    /// ```
    /// let tags: taskflow::Tags = [("source", "signup"), ("tenant", "acme")].into_iter().collect();
    /// let keys: Vec<&str> = tags.iter().map(|(key, _)| key).collect();
    /// assert_eq!(keys, ["source", "tenant"]);
    /// ```
    pub fn iter(&self) -> TagsIter<'_> {
        TagsIter {
            rest: self.0.as_deref().unwrap_or_default(),
        }
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
    pub fn insert(&mut self, key: impl AsRef<str>, value: impl AsRef<str>) -> Option<String> {
        let key = key.as_ref();
        let old = self.get(key).map(str::to_owned);
        self.extend([(key, value)]);
        old
    }

    /// Removes tag `key`; returns the value it had.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut tags: taskflow::Tags = [("tenant", "acme"), ("debug", "1")].into_iter().collect();
    /// let copy = tags.clone();
    /// assert_eq!(tags.remove("debug").as_deref(), Some("1"));
    /// assert_eq!(tags.remove("debug"), None);
    /// assert_eq!(tags.len(), 1);
    /// assert_eq!(copy.len(), 2);
    /// ```
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let old = self.get(key)?.to_owned();
        *self = self.iter().filter(|&(k, _)| k != key).collect();
        Some(old)
    }
}

/// The tags of a [`Tags`] as `(key, value)` pairs, in key order: see [`Tags::iter`].
///
/// # Examples
///
/// ```
/// let tags: taskflow::Tags = [("tenant", "acme")].into_iter().collect();
/// let mut pairs: taskflow::TagsIter<'_> = tags.iter();
/// assert_eq!(pairs.next(), Some(("tenant", "acme")));
/// assert_eq!(pairs.next(), None);
/// ```
#[derive(Clone, Debug)]
pub struct TagsIter<'a> {
    rest: &'a str,
}

impl<'a> Iterator for TagsIter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let (key_len, rest) = self.rest.split_once(':')?;
        let (value_len, rest) = rest.split_once(':')?;
        let (key, rest) = rest.split_at_checked(key_len.parse().ok()?)?;
        let (value, rest) = rest.split_at_checked(value_len.parse().ok()?)?;
        self.rest = rest;
        Some((key, value))
    }
}

impl FusedIterator for TagsIter<'_> {}

impl<'a> IntoIterator for &'a Tags {
    type Item = (&'a str, &'a str);
    type IntoIter = TagsIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl IntoIterator for Tags {
    type Item = (String, String);
    type IntoIter = std::vec::IntoIter<(String, String)>;

    /// The tags as owned pairs, in key order.
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect::<Vec<_>>()
            .into_iter()
    }
}

impl Index<&str> for Tags {
    type Output = str;

    /// The value of tag `key`.
    ///
    /// # Panics
    ///
    /// If there is no tag `key`; [`get`](Tags::get) returns `None` instead.
    fn index(&self, key: &str) -> &str {
        match self.get(key) {
            Some(value) => value,
            None => panic!("no tag `{key}`"),
        }
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Extend<(K, V)> for Tags {
    /// Adds the tags; a key given again takes the last value given.
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, tags: I) {
        let mut tags = tags.into_iter().peekable();
        if tags.peek().is_none() {
            return;
        }
        let Ok(extended) = Gather::with(|gather| {
            gather.pairs(self.iter());
            gather.pairs(tags);
            Ok::<_, std::convert::Infallible>(())
        });
        *self = extended;
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for Tags {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(tags: I) -> Self {
        let mut collected = Self::new();
        collected.extend(tags);
        collected
    }
}

impl From<std::collections::BTreeMap<String, String>> for Tags {
    /// The tags of `map` (none when it is empty).
    ///
    /// # Examples
    ///
    /// ```
    /// let map = std::collections::BTreeMap::from([("k".to_owned(), "v".to_owned())]);
    /// assert_eq!(taskflow::Tags::from(map).get("k"), Some("v"));
    /// ```
    fn from(map: std::collections::BTreeMap<String, String>) -> Self {
        map.into_iter().collect()
    }
}

impl fmt::Debug for Tags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Tags {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Tags {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TagsVisitor;

        impl<'de> Visitor<'de> for TagsVisitor {
            type Value = Tags;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of string tags")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tags, A::Error> {
                Gather::with(|gather| {
                    while let Some((Text(key), Text(value))) = map.next_entry()? {
                        gather.pair(&key, &value);
                    }
                    Ok(())
                })
            }
        }

        deserializer.deserialize_map(TagsVisitor)
    }
}

/// A string read without a copy where the input allows it.
struct Text<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;

        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(text)))
            }

            fn visit_str<E>(self, text: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(text.to_owned())))
            }

            fn visit_string<E>(self, text: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(text)))
            }
        }

        deserializer.deserialize_str(TextVisitor)
    }
}

/// The pairs of a tag set being built, before they are sorted and written: their text one
/// after another, where each pair's key and value end, and the text being written. One per
/// thread is reused, so building a tag set allocates only the block it ends in.
#[derive(Default)]
struct Gather {
    text: String,
    pairs: Vec<Pair>,
    written: String,
}

/// A pair in [`Gather::text`]: its key is `start..key_end`, its value `key_end..end`.
struct Pair {
    start: usize,
    key_end: usize,
    end: usize,
}

/// Above this many bytes of text or this many pairs, a thread's [`Gather`] gives its buffers
/// back after use.
const KEPT_CAPACITY: usize = 4096;
const KEPT_PAIRS: usize = 64;

impl Gather {
    /// The tags of the pairs that `fill` gathers, through this thread's `Gather` (taken out
    /// while in use, so that tags built inside `fill` get an empty one of their own).
    fn with<E>(fill: impl FnOnce(&mut Self) -> Result<(), E>) -> Result<Tags, E> {
        thread_local! {
            static GATHER: Cell<Gather> = const { Cell::new(Gather::new()) };
        }
        let mut gather = GATHER.try_with(Cell::take).unwrap_or_default();
        let tags = gather.build(fill);
        // A thread being torn down keeps nothing.
        let _ = GATHER.try_with(|kept| kept.set(gather));
        tags
    }

    const fn new() -> Self {
        Self {
            text: String::new(),
            pairs: Vec::new(),
            written: String::new(),
        }
    }

    fn build<E>(&mut self, fill: impl FnOnce(&mut Self) -> Result<(), E>) -> Result<Tags, E> {
        self.text.clear();
        self.pairs.clear();
        let filled = fill(self);
        let tags = filled.map(|()| self.write());
        if self.text.capacity() > KEPT_CAPACITY
            || self.written.capacity() > KEPT_CAPACITY
            || self.pairs.capacity() > KEPT_PAIRS
        {
            *self = Self::new();
        }
        tags
    }

    fn pairs<K: AsRef<str>, V: AsRef<str>>(&mut self, pairs: impl IntoIterator<Item = (K, V)>) {
        for (key, value) in pairs {
            self.pair(key.as_ref(), value.as_ref());
        }
    }

    fn pair(&mut self, key: &str, value: &str) {
        let start = self.text.len();
        self.text.push_str(key);
        let key_end = self.text.len();
        self.text.push_str(value);
        self.pairs.push(Pair {
            start,
            key_end,
            end: self.text.len(),
        });
    }

    /// The gathered pairs in key order, the last value given for a key winning.
    fn write(&mut self) -> Tags {
        let Self {
            text,
            pairs,
            written,
        } = self;
        let key = |pair: &Pair| &text[pair.start..pair.key_end];
        pairs.sort_by(|a, b| key(a).cmp(key(b))); // stable: a key's pairs stay in given order
        written.clear();
        for (i, pair) in pairs.iter().enumerate() {
            if pairs.get(i + 1).is_some_and(|next| key(next) == key(pair)) {
                continue;
            }
            let value = &text[pair.key_end..pair.end];
            push_decimal(written, key(pair).len());
            written.push(':');
            push_decimal(written, value.len());
            written.push(':');
            written.push_str(key(pair));
            written.push_str(value);
        }
        Tags((!written.is_empty()).then(|| Arc::from(written.as_str())))
    }
}

/// Writes `n` in decimal.
fn push_decimal(out: &mut String, n: usize) {
    if n < 10 {
        // Most keys and many values are this short.
        out.push(char::from(b'0' + n as u8));
        return;
    }
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n;
    while rest > 0 {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out.extend(digits[at..].iter().map(|&digit| char::from(digit)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_share_one_block_until_one_changes() {
        let tags: Tags = [("a", "1")].into_iter().collect();
        let mut copy = tags.clone();
        match (&tags.0, &copy.0) {
            (Some(a), Some(b)) => assert!(Arc::ptr_eq(a, b)),
            _ => panic!("both hold the block"),
        }
        copy.insert("b", "2");
        assert_eq!(tags.len(), 1);
        assert_eq!(copy.len(), 2);
        assert_ne!(tags, copy);
    }

    #[test]
    fn no_tags_hold_no_block_and_equal_an_emptied_set() {
        let mut tags = Tags::new();
        tags.extend(std::iter::empty::<(String, String)>());
        assert!(tags.0.is_none());
        let emptied: Tags = std::collections::BTreeMap::new().into();
        assert!(emptied.0.is_none());
        let mut removed: Tags = [("a", "1")].into_iter().collect();
        assert_eq!(removed.remove("a").as_deref(), Some("1"));
        assert!(removed.0.is_none());
        let back: Tags = serde_json::from_str("{}").expect("a map");
        assert_eq!(back, Tags::default());
        assert_eq!(serde_json::to_string(&back).expect("serializes"), "{}");
    }

    #[test]
    fn keys_are_unique_and_ordered_whatever_order_they_come_in() {
        let tags: Tags = [("b", "1"), ("a", "2"), ("b", "3"), ("c", "4"), ("a", "5")]
            .into_iter()
            .collect();
        let pairs: Vec<_> = tags.iter().collect();
        assert_eq!(pairs, [("a", "5"), ("b", "3"), ("c", "4")]);
        let same: Tags = [("c", "4"), ("b", "3"), ("a", "5")].into_iter().collect();
        assert_eq!(tags, same);
    }

    #[test]
    fn any_text_round_trips_including_separators_digits_and_wide_characters() {
        let awkward = [
            ("", ""),
            ("1:2:", "3:"),
            ("κλειδί", "τιμή ✓"),
            ("long", &"x".repeat(KEPT_CAPACITY + 1)),
            ("quote\"", "back\\slash\n"),
        ];
        let tags: Tags = awkward.iter().copied().collect();
        for (key, value) in awkward {
            assert_eq!(tags.get(key), Some(value), "tag {key:?}");
        }
        assert_eq!(tags.len(), awkward.len());
        let json = serde_json::to_string(&tags).expect("serializes");
        let back: Tags = serde_json::from_str(&json).expect("reads back");
        assert_eq!(back, tags);
        let via_value: Tags =
            serde_json::from_value(serde_json::to_value(&tags).expect("a value")).expect("reads");
        assert_eq!(via_value, tags);
    }

    #[test]
    fn non_string_values_are_rejected() {
        let error = serde_json::from_str::<Tags>(r#"{"n":1}"#).expect_err("not a string");
        assert!(error.to_string().contains("expected a string"), "{error}");
        let error = serde_json::from_str::<Tags>("[]").expect_err("not a map");
        assert!(
            error.to_string().contains("a map of string tags"),
            "{error}"
        );
    }

    #[test]
    fn a_gather_interrupted_by_a_panic_leaves_nothing_behind() {
        struct Panics;
        impl AsRef<str> for Panics {
            fn as_ref(&self) -> &str {
                panic!("as_ref")
            }
        }
        let panicked = std::panic::catch_unwind(|| {
            let mut tags: Tags = [("kept", "1")].into_iter().collect();
            tags.extend([("a", "1")].into_iter().map(|(k, _)| (k, Panics)));
        });
        assert!(panicked.is_err());
        let tags: Tags = [("b", "2")].into_iter().collect();
        assert_eq!(tags.iter().collect::<Vec<_>>(), [("b", "2")]);
    }

    #[test]
    fn owned_iteration_gives_the_pairs_in_key_order() {
        let tags: Tags = [("k", "v"), ("a", "b")].into_iter().collect();
        let pairs: Vec<_> = tags.clone().into_iter().collect();
        assert_eq!(
            pairs,
            [
                ("a".to_owned(), "b".to_owned()),
                ("k".to_owned(), "v".to_owned())
            ]
        );
        assert_eq!(&tags["k"], "v");
        assert_eq!(format!("{tags:?}"), r#"{"a": "b", "k": "v"}"#);
    }

    #[test]
    #[should_panic(expected = "no tag `missing`")]
    fn indexing_a_missing_key_panics_with_the_key() {
        let _ = &Tags::new()["missing"];
    }
}

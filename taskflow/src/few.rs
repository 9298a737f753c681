//! [`Few`]: a list that usually holds one item (the attempt a finish starts, the one caller
//! waiting for a task), kept inline so the common case allocates nothing.

/// Items in push order; the first lives inline, the rest in a `Vec` that allocates only when
/// a second arrives.
#[derive(Debug)]
pub(crate) struct Few<T> {
    first: Option<T>,
    rest: Vec<T>,
}

impl<T> Few<T> {
    pub(crate) const fn new() -> Self {
        Self {
            first: None,
            rest: Vec::new(),
        }
    }

    /// A list of `item` alone.
    pub(crate) fn one(item: T) -> Self {
        Self {
            first: Some(item),
            rest: Vec::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    pub(crate) fn push(&mut self, item: T) {
        if self.first.is_none() {
            self.first = Some(item);
        } else {
            self.rest.push(item);
        }
    }
}

impl<T> Few<T> {
    /// Empties the list in place, handing each item to `f` in push order (moving items out one
    /// at a time instead of moving the whole list first).
    pub(crate) fn drain_each(&mut self, mut f: impl FnMut(T)) {
        if let Some(first) = self.first.take() {
            f(first);
        }
        self.rest.drain(..).for_each(f);
    }
}

impl<T> Default for Few<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> IntoIterator for Few<T> {
    type Item = T;
    type IntoIter = std::iter::Chain<std::option::IntoIter<T>, std::vec::IntoIter<T>>;

    fn into_iter(self) -> Self::IntoIter {
        self.first.into_iter().chain(self.rest)
    }
}

#[cfg(test)]
mod tests {
    use super::Few;

    #[test]
    fn keeps_push_order() {
        let mut few = Few::new();
        assert!(few.is_empty());
        for n in 0..5 {
            few.push(n);
        }
        assert!(!few.is_empty());
        let mut drained = Vec::new();
        few.drain_each(|n| drained.push(n));
        assert!(few.is_empty());
        assert_eq!(drained, vec![0, 1, 2, 3, 4]);
        few.push(5);
        few.push(6);
        assert_eq!(few.into_iter().collect::<Vec<_>>(), vec![5, 6]);
    }
}

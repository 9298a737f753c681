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

impl<T> Default for Few<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> IntoIterator for Few<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;

    fn into_iter(self) -> IntoIter<T> {
        IntoIter {
            first: self.first,
            // An empty `Vec` is not turned into an iterator: most lists hold one item, and
            // making and dropping an empty iterator costs more than the item.
            rest: (!self.rest.is_empty()).then(|| self.rest.into_iter()),
        }
    }
}

/// The items of a [`Few`], in push order.
pub(crate) struct IntoIter<T> {
    first: Option<T>,
    rest: Option<std::vec::IntoIter<T>>,
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        match self.first.take() {
            Some(first) => Some(first),
            None => self.rest.as_mut()?.next(),
        }
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
        assert_eq!(few.into_iter().collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
        let mut one = Few::one(5);
        one.push(6);
        assert_eq!(one.into_iter().collect::<Vec<_>>(), vec![5, 6]);
    }
}

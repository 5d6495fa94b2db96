//! A stable sort compiled once: positions are sorted with the comparison behind `dyn`, then
//! the values are moved into that order. Sorting a `Vec<T>` directly would compile the
//! standard library's sort (some 2,000 lines of LLVM IR) again for every record type and
//! every comparison closure.

use std::cmp::Ordering;

/// Sorts `v` by `cmp`, stably (equal values keep their order).
pub(crate) fn sort_by<X>(v: &mut [X], cmp: impl Fn(&X, &X) -> Ordering) {
    if v.len() < 2 {
        return;
    }
    let mut order: Vec<usize> = (0..v.len()).collect();
    sort_positions(&mut order, &|a, b| cmp(&v[a], &v[b]));
    permute(v, order);
}

/// Sorts `v` by `keys` (the key of each value, at the same position), stably.
pub(crate) fn sort_by_keys<X, K: Ord>(v: &mut [X], keys: &[K]) {
    if v.len() < 2 || keys.len() != v.len() {
        return;
    }
    let mut order: Vec<usize> = (0..v.len()).collect();
    sort_positions(&mut order, &|a, b| keys[a].cmp(&keys[b]));
    permute(v, order);
}

/// Puts `v` in `order` (`order[i]`: the position of the value that goes to `i`, each
/// position once), by following each cycle of the permutation with swaps: plain loops,
/// no iterator adapters instantiated for `X`.
fn permute<X>(v: &mut [X], mut order: Vec<usize>) {
    for start in 0..order.len() {
        let mut at = start;
        loop {
            let from = order[at];
            // Marks `at` done; a position already done is a fixed point from then on.
            order[at] = at;
            if from == start || from == at {
                break;
            }
            v.swap(at, from);
            at = from;
        }
    }
}

fn sort_positions(order: &mut [usize], cmp: &dyn Fn(usize, usize) -> Ordering) {
    order.sort_by(|a, b| cmp(*a, *b));
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        /// The same order as the standard library's stable sort, equal keys included.
        #[test]
        fn sorts_as_the_standard_stable_sort(v in proptest::collection::vec((0u8..8, any::<u32>()), 0..200)) {
            let mut ours = v.clone();
            super::sort_by(&mut ours, |a, b| a.0.cmp(&b.0));
            let mut std = v;
            std.sort_by_key(|a| a.0);
            prop_assert_eq!(ours, std);
        }
    }
}

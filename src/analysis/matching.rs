//! The best one-to-one matching between two labelings (the Hungarian algorithm, Kuhn–Munkres,
//! in its O(n²m) potential form): used to give each cluster the colour of the cell type it
//! overlaps most, with no two clusters taking the same type.

/// For a `rows × cols` table of weights (e.g. cells shared by cluster `r` and type `c`), the
/// matching of rows to distinct columns with the largest total weight: `out[r]` is row `r`'s
/// column, `None` for the rows left over when there are more rows than columns. Ties are
/// resolved the same way on every run.
pub fn max_weight_matching(weights: &[Vec<f64>]) -> Vec<Option<usize>> {
    let rows = weights.len();
    let cols = weights.first().map_or(0, Vec::len);
    if rows == 0 || cols == 0 {
        return vec![None; rows];
    }
    if rows > cols {
        // Match the columns to rows instead, then invert.
        let t: Vec<Vec<f64>> = (0..cols)
            .map(|c| (0..rows).map(|r| weights[r][c]).collect())
            .collect();
        let mut out = vec![None; rows];
        for (c, r) in max_weight_matching(&t).into_iter().enumerate() {
            if let Some(r) = r {
                out[r] = Some(c);
            }
        }
        return out;
    }
    // Minimise cost = max − w over rows ≤ cols (1-based arrays, column 0 a sentinel).
    let top = weights
        .iter()
        .flatten()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    let cost = |r: usize, c: usize| top - weights[r - 1][c - 1];
    let (mut u, mut v) = (vec![0.0f64; rows + 1], vec![0.0f64; cols + 1]);
    let (mut owner, mut way) = (vec![0usize; cols + 1], vec![0usize; cols + 1]);
    for r in 1..=rows {
        owner[0] = r;
        let mut j0 = 0;
        let mut min_to = vec![f64::INFINITY; cols + 1];
        let mut used = vec![false; cols + 1];
        loop {
            used[j0] = true;
            let (i0, mut delta, mut j1) = (owner[j0], f64::INFINITY, 0);
            for j in 1..=cols {
                if !used[j] {
                    let cur = cost(i0, j) - u[i0] - v[j];
                    if cur < min_to[j] {
                        min_to[j] = cur;
                        way[j] = j0;
                    }
                    if min_to[j] < delta {
                        delta = min_to[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=cols {
                if used[j] {
                    u[owner[j]] += delta;
                    v[j] -= delta;
                } else {
                    min_to[j] -= delta;
                }
            }
            j0 = j1;
            if owner[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            owner[j0] = owner[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut out = vec![None; rows];
    for c in 1..=cols {
        if owner[c] != 0 {
            out[owner[c] - 1] = Some(c - 1);
        }
    }
    out
}

/// The contingency table `table[a][b]` = number of items with label `a` in `first` and `b` in
/// `second` (items with no second label skipped).
pub fn contingency(
    first: &[usize],
    second: &[Option<usize>],
    n_first: usize,
    n_second: usize,
) -> Vec<Vec<f64>> {
    let mut t = vec![vec![0.0; n_second]; n_first];
    for (&a, b) in first.iter().zip(second) {
        if let Some(b) = b {
            t[a][*b] += 1.0;
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every permutation of a small square table: the matching's total is the best one.
    #[test]
    fn finds_the_best_assignment() {
        let w = vec![
            vec![7.0, 5.0, 1.0, 0.0],
            vec![6.0, 2.0, 9.0, 3.0],
            vec![5.0, 8.0, 8.0, 1.0],
            vec![0.0, 1.0, 2.0, 4.0],
        ];
        let m = max_weight_matching(&w);
        let total: f64 = m.iter().enumerate().map(|(r, c)| w[r][c.unwrap()]).sum();
        let mut best = 0.0f64;
        let mut p = [0, 1, 2, 3];
        // Heap's algorithm over the 24 permutations.
        fn permute(k: usize, p: &mut [usize; 4], w: &[Vec<f64>], best: &mut f64) {
            if k == 1 {
                *best = best.max((0..4).map(|r| w[r][p[r]]).sum());
                return;
            }
            for i in 0..k {
                permute(k - 1, p, w, best);
                let j = if k.is_multiple_of(2) { i } else { 0 };
                p.swap(j, k - 1);
            }
        }
        permute(4, &mut p, &w, &mut best);
        assert_eq!(total, best);
        assert_eq!(total, 7.0 + 9.0 + 8.0 + 4.0);
    }

    #[test]
    fn rectangular_tables() {
        // More clusters than types: one cluster is left without a type.
        let w = vec![vec![5.0, 0.0], vec![4.0, 1.0], vec![0.0, 6.0]];
        assert_eq!(max_weight_matching(&w), vec![Some(0), None, Some(1)]);
        // More types than clusters.
        let w = vec![vec![1.0, 9.0, 2.0]];
        assert_eq!(max_weight_matching(&w), vec![Some(1)]);
    }

    #[test]
    fn contingency_counts_pairs() {
        let t = contingency(&[0, 0, 1, 1], &[Some(1), None, Some(1), Some(0)], 2, 2);
        assert_eq!(t, vec![vec![0.0, 1.0], vec![1.0, 1.0]]);
    }
}

//! The confusion matrix of a clustering against the labels: one row per cell type, one column
//! per cluster, the columns ordered by the Hungarian matching of clusters to types (the one
//! the matched accuracy uses), so a good clustering puts its counts on the diagonal. Each
//! cell shows its count, shaded by the share of its row (the type's cells).

use super::plots::{png, FAMILY};
use crate::analysis::matching::{contingency, max_weight_matching};
use crate::error::Result;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

/// Column order: clusters matched to types in the types' order, then the unmatched ones.
pub fn matched_order(table: &[Vec<f64>], k: usize) -> Vec<usize> {
    let by_cluster: Vec<Vec<f64>> = (0..k)
        .map(|c| table.iter().map(|row| row[c]).collect())
        .collect();
    let matched = max_weight_matching(&by_cluster);
    let mut order: Vec<usize> = Vec::with_capacity(k);
    for t in 0..table.len() {
        if let Some(c) = (0..k).find(|&c| matched[c] == Some(t)) {
            order.push(c);
        }
    }
    let rest: Vec<usize> = (0..k).filter(|c| !order.contains(c)).collect();
    order.extend(rest);
    order
}

/// Draws the matrix of `clusters` (`0..k`) against `types` (ids into `names`; `None`
/// unlabelled, left out).
pub fn confusion_figure(
    path: &Path,
    title: &str,
    clusters: &[usize],
    k: usize,
    types: &[Option<usize>],
    names: &[String],
) -> Result<()> {
    let table = contingency(clusters, types, k, names.len());
    // rows = types
    let rows: Vec<Vec<f64>> = (0..names.len())
        .map(|t| (0..k).map(|c| table[c][t]).collect())
        .collect();
    let order = matched_order(&rows, k);
    let n = names.len();
    if k == 0 || n == 0 {
        return Ok(());
    }
    let size = (
        (360 + 64 * k).max(9 * title.len() + 40) as u32,
        (140 + 40 * n) as u32,
    );
    png(path, size, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FAMILY, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(150)
            // `a..b` segments hold a..=b: the last index is the range's end.
            .build_cartesian_2d((0..k - 1).into_segmented(), (0..n - 1).into_segmented())
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(k)
            .y_labels(n)
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) | SegmentValue::Exact(i) if *i < k => {
                    order[*i].to_string()
                }
                _ => String::new(),
            })
            // Row n − 1 − t holds type t, so the first type is at the top.
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) | SegmentValue::Exact(i) if *i < n => {
                    names[n - 1 - i].clone()
                }
                _ => String::new(),
            })
            .label_style((FAMILY, 13))
            .x_desc("cluster (matched order)")
            .draw()
            .map_err(|e| e.to_string())?;
        for (t, row) in rows.iter().enumerate() {
            let total: f64 = row.iter().sum();
            for (col, &c) in order.iter().enumerate() {
                let share = if total > 0.0 { row[c] / total } else { 0.0 };
                let shade = |full: f64| (255.0 - share * (255.0 - full)) as u8;
                let y = n - 1 - t;
                chart
                    .draw_series([Rectangle::new(
                        [
                            (SegmentValue::Exact(col), SegmentValue::Exact(y)),
                            (SegmentValue::Exact(col + 1), SegmentValue::Exact(y + 1)),
                        ],
                        RGBColor(shade(8.0), shade(81.0), shade(156.0)).filled(),
                    )])
                    .map_err(|e| e.to_string())?;
                let ink = if share > 0.5 { WHITE } else { BLACK };
                chart
                    .draw_series([Text::new(
                        format!("{}", row[c] as u64),
                        (SegmentValue::CenterOf(col), SegmentValue::CenterOf(y)),
                        (FAMILY, 13)
                            .into_font()
                            .color(&ink)
                            .pos(Pos::new(HPos::Center, VPos::Center)),
                    )])
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_follow_the_matching() {
        // Types × clusters: type 0 is cluster 2, type 1 is cluster 0; cluster 1 is left over.
        let rows = vec![vec![1.0, 0.0, 9.0], vec![8.0, 2.0, 0.0]];
        assert_eq!(matched_order(&rows, 3), vec![2, 0, 1]);
    }
}

//! The marker-gene dot plot: for the top genes of each cluster, one row per gene and one
//! column per cluster; a dot's area is the share of the cluster's cells in which the gene is
//! detected, its colour the cluster's mean expression scaled by the gene's largest cluster mean
//! (scanpy's `dotplot` with `standard_scale="var"`).

use super::plots::{png, FAMILY};
use crate::error::Result;
use ndarray::Array2;
use plotters::prelude::*;
use std::path::Path;

/// Draws `mean` and `detected` (both `genes × clusters`) as a dot plot.
pub fn dot_plot(
    path: &Path,
    title: &str,
    genes: &[String],
    clusters: &[String],
    mean: &Array2<f64>,
    detected: &Array2<f64>,
) -> Result<()> {
    let (n, k) = (genes.len(), clusters.len());
    if n == 0 || k == 0 {
        return Ok(());
    }
    let size = ((220 + 56 * k) as u32, (120 + 24 * n) as u32);
    png(path, size, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FAMILY, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(110)
            // `a..b` segments hold a..=b: the last index is the range's end (with `0..k` an
            // empty row and column were drawn past the last gene and cluster).
            .build_cartesian_2d((0..k - 1).into_segmented(), (0..n - 1).into_segmented())
            .map_err(|e| e.to_string())?;
        let name = |names: &[String], v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                names.get(*i).cloned().unwrap_or_default()
            }
            SegmentValue::Last => String::new(),
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(k)
            .y_labels(n)
            .x_label_formatter(&|v| name(clusters, v))
            // Row n − 1 − g holds gene g, so the first gene is at the top.
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) | SegmentValue::Exact(i) if *i < n => {
                    genes[n - 1 - i].clone()
                }
                _ => String::new(),
            })
            .label_style((FAMILY, 13))
            .x_desc("cluster")
            .draw()
            .map_err(|e| e.to_string())?;
        for g in 0..n {
            let top = (0..k).map(|c| mean[[g, c]]).fold(0.0f64, f64::max);
            for c in 0..k {
                let scaled = if top > 0.0 { mean[[g, c]] / top } else { 0.0 };
                // White to dark red by the scaled mean.
                let shade = |full: f64| (255.0 - scaled * (255.0 - full)) as u8;
                let colour = RGBColor(shade(165.0), shade(15.0), shade(21.0));
                let radius = (10.0 * detected[[g, c]].sqrt()).round() as i32;
                let at = (SegmentValue::CenterOf(c), SegmentValue::CenterOf(n - 1 - g));
                chart
                    .draw_series([
                        Circle::new(at.clone(), radius, colour.filled()),
                        Circle::new(at, radius, BLACK.mix(0.4)),
                    ])
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    })
}

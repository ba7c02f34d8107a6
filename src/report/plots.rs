//! The figures, drawn with plotters and the embedded DejaVu Sans font (no system fonts are
//! needed). Each PNG is drawn under a temporary name and renamed when complete.
//!
//! - [`embedding_figure`]: the study's figure, the 2-D t-SNE coloured by cell type beside the
//!   same embedding coloured by k-means cluster with the centroids marked;
//! - [`batch_figure`]: an embedding coloured by batch beside the same coloured by cell type;
//! - [`projections_3d`]: the 3-D t-SNE as three 2-D projections;
//! - [`loss_curves`]: reconstruction per entry and KL per cell over the epochs;
//! - [`score_bars`]: the four scores of every model, PCA beside them.
//!
//! The loss curves and the score bars are also written as SVG (vector drawings suit them);
//! the scatter plots of thousands of points stay PNG.

use crate::analysis::matching::{contingency, max_weight_matching};
use crate::error::{Error, Result};
use crate::io::atomic::write_atomic;
use crate::train::EpochRecord;
use ndarray::Array2;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};
use std::path::Path;
use std::sync::OnceLock;

/// DejaVu Sans (licence: DejaVuSans-LICENSE.txt beside this file), embedded in the binary.
const FONT: &[u8] = include_bytes!("DejaVuSans.ttf");
pub(super) const FAMILY: &str = "sans-serif";

/// Tableau-style categorical colours, then a few more for up to 16 groups.
const PALETTE: [(u8, u8, u8); 16] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
    (0, 0, 128),
    (128, 128, 0),
    (0, 128, 128),
    (255, 215, 0),
    (70, 240, 240),
    (170, 110, 40),
];

/// The colour of group `k`.
pub fn colour(k: usize) -> RGBColor {
    let (r, g, b) = PALETTE[k % PALETTE.len()];
    RGBColor(r, g, b)
}

/// Registers the embedded font once; every figure needs it.
fn ensure_font() -> std::result::Result<(), String> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    if *REGISTERED.get_or_init(|| register_font(FAMILY, FontStyle::Normal, FONT).is_ok()) {
        Ok(())
    } else {
        Err("the embedded font could not be loaded".into())
    }
}

fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::io(
        path,
        std::io::Error::other(format!("cannot draw the figure: {e}")),
    )
}

/// Draws a PNG of `size` through `draw`, atomically.
pub(super) fn png(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> std::result::Result<(), String>,
) -> Result<()> {
    ensure_font().map_err(|e| plot_err(path, e))?;
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("figure");
    let tmp = path.with_file_name(format!("{stem}.tmp{}.png", std::process::id()));
    let result = (|| {
        let root = BitMapBackend::new(&tmp, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        draw(&root)?;
        root.present().map_err(|e| e.to_string())
    })();
    match result {
        Ok(()) => std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e)),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(plot_err(path, e))
        }
    }
}

/// Draws an SVG of `size` through `draw`, atomically. Text refers to the font family by name;
/// a viewer without DejaVu Sans substitutes its own sans-serif.
fn svg(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> std::result::Result<(), String>,
) -> Result<()> {
    ensure_font().map_err(|e| plot_err(path, e))?;
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
        draw(&root).map_err(|e| plot_err(path, e))?;
        root.present().map_err(|e| plot_err(path, e))?;
    }
    write_atomic(path, |w| w.write_all(text.as_bytes()))
}

/// The series legend of `chart`, boxed, at `position`.
fn draw_legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    font_size: u32,
    position: SeriesLabelPosition,
) -> std::result::Result<(), String>
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .label_font((FAMILY, font_size))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(position)
        .draw()
        .map_err(|e| e.to_string())
}

/// Axis range of a column with a 5 % margin.
fn range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    let pad = ((hi - lo) * 0.05).max(1e-9);
    (lo - pad)..(hi + pad)
}

/// Point radius and opacity for `n` points: small and translucent as `n` grows, so that a
/// million points still show where they are dense.
fn point_style(n: usize) -> (i32, f64) {
    match n {
        0..=10_000 => (2, 1.0),
        10_001..=100_000 => (1, 0.5),
        _ => (1, 0.15),
    }
}

/// A scatter of columns `(cx, cy)` of `coords`, one series per group, in `area`.
#[allow(clippy::too_many_arguments)]
fn scatter<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    coords: &Array2<f64>,
    (cx, cy): (usize, usize),
    groups: &[Option<usize>],
    names: &[String],
    legend: bool,
    centroids: Option<&Array2<f64>>,
    slots: Option<&[usize]>,
) -> std::result::Result<(), String>
where
    DB::ErrorType: 'static,
{
    let xr = range(coords.column(cx).iter().copied());
    let yr = range(coords.column(cy).iter().copied());
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FAMILY, 20))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(36)
        .build_cartesian_2d(xr, yr)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_mesh()
        .label_style((FAMILY, 12))
        .draw()
        .map_err(|e| e.to_string())?;
    let (radius, alpha) = point_style(coords.nrows());
    let unlabelled: Vec<(f64, f64)> = groups
        .iter()
        .enumerate()
        .filter(|(_, g)| g.is_none())
        .map(|(i, _)| (coords[[i, cx]], coords[[i, cy]]))
        .collect();
    if !unlabelled.is_empty() {
        chart
            .draw_series(
                unlabelled
                    .iter()
                    .map(|&p| Circle::new(p, radius, RGBColor(200, 200, 200).mix(alpha).filled())),
            )
            .map_err(|e| e.to_string())?;
    }
    for (k, name) in names.iter().enumerate() {
        // Group k's palette slot: its own index unless the caller chose (matched colours).
        let c = colour(slots.map_or(k, |s| s[k]));
        let pts: Vec<(f64, f64)> = groups
            .iter()
            .enumerate()
            .filter(|(_, g)| **g == Some(k))
            .map(|(i, _)| (coords[[i, cx]], coords[[i, cy]]))
            .collect();
        let series = chart
            .draw_series(
                pts.iter()
                    .map(|&p| Circle::new(p, radius, c.mix(alpha).filled())),
            )
            .map_err(|e| e.to_string())?;
        if legend {
            series
                .label(format!("{name} ({})", pts.len()))
                .legend(move |(x, y)| Circle::new((x + 6, y), 4, c.filled()));
        }
    }
    if let Some(cent) = centroids {
        for (k, row) in cent.rows().into_iter().enumerate() {
            let p = (row[cx], row[cy]);
            chart
                .draw_series([Cross::new(p, 7, BLACK.stroke_width(3))])
                .map_err(|e| e.to_string())?;
            chart
                .draw_series([Text::new(format!("{k}"), p, (FAMILY, 15).into_font())])
                .map_err(|e| e.to_string())?;
        }
    }
    if legend {
        draw_legend(&mut chart, 12, SeriesLabelPosition::UpperRight)?;
    }
    Ok(())
}

/// The study's figure: t-SNE by cell type (left) and by k-means cluster with centroids (right).
/// Clusters to draw: each point's cluster, the clusters' centres, and each cluster's palette
/// slot (see [`cluster_slots`]).
pub struct Clusters<'a> {
    pub labels: &'a [usize],
    pub centroids: &'a Array2<f64>,
    pub slots: &'a [usize],
}

/// Palette slots for `k` clusters. Clusters and cell types are matched one to one for the
/// largest total overlap ([`max_weight_matching`]); a cluster keeps its match when that type
/// is also its most frequent one, and then takes the type's colour, so that a colour shared by
/// the two panels means "mostly these cells". Every other cluster takes a slot after the
/// types'. Without labels, cluster `c` takes slot `c`.
pub fn cluster_slots(
    labels: &[usize],
    k: usize,
    cell_types: Option<(&[Option<usize>], &[String])>,
) -> Vec<usize> {
    let Some((types, names)) = cell_types else {
        return (0..k).collect();
    };
    let table = contingency(labels, types, k, names.len());
    let matched = max_weight_matching(&table);
    let mut next = names.len();
    matched
        .into_iter()
        .zip(&table)
        .map(|(m, row)| {
            let top = row.iter().copied().fold(0.0f64, f64::max);
            m.filter(|&t| row[t] > 0.0 && row[t] == top)
                .unwrap_or_else(|| {
                    next += 1;
                    next - 1
                })
        })
        .collect()
}

pub fn embedding_figure(
    path: &Path,
    title: &str,
    coords: &Array2<f64>,
    cell_types: Option<(&[Option<usize>], &[String])>,
    clusters: Option<Clusters<'_>>,
) -> Result<()> {
    png(path, (1500, 700), |root| {
        root.titled(title, (FAMILY, 24))
            .map_err(|e| e.to_string())?;
        let (left, right) = root.margin(34, 0, 0, 0).split_horizontally(750);
        match cell_types {
            Some((groups, names)) => scatter(
                &left,
                "coloured by cell type",
                coords,
                (0, 1),
                groups,
                names,
                true,
                None,
                None,
            )?,
            None => scatter(
                &left,
                "no labels",
                coords,
                (0, 1),
                &vec![Some(0); coords.nrows()],
                &["cells".into()],
                false,
                None,
                None,
            )?,
        }
        if let Some(Clusters {
            labels,
            centroids,
            slots,
        }) = clusters
        {
            let k = centroids.nrows();
            let groups: Vec<Option<usize>> = labels.iter().map(|&l| Some(l)).collect();
            let names: Vec<String> = (0..k).map(|c| format!("cluster {c}")).collect();
            scatter(
                &right,
                &format!("coloured by k-means cluster (k = {k})"),
                coords,
                (0, 1),
                &groups,
                &names,
                false,
                Some(centroids),
                Some(slots),
            )?;
        }
        Ok(())
    })
}

/// An embedding coloured by batch (left) beside the same coloured by cell type (right, when
/// there are labels): mixed colours on the left and separate ones on the right are what
/// integration is for.
pub fn batch_figure(
    path: &Path,
    title: &str,
    coords: &Array2<f64>,
    batches: (&[Option<usize>], &[String]),
    cell_types: Option<(&[Option<usize>], &[String])>,
) -> Result<()> {
    png(path, (1500, 700), |root| {
        root.titled(title, (FAMILY, 24))
            .map_err(|e| e.to_string())?;
        let (left, right) = root.margin(34, 0, 0, 0).split_horizontally(750);
        let (groups, names) = batches;
        scatter(
            &left,
            "coloured by batch",
            coords,
            (0, 1),
            groups,
            names,
            true,
            None,
            None,
        )?;
        if let Some((groups, names)) = cell_types {
            scatter(
                &right,
                "coloured by cell type",
                coords,
                (0, 1),
                groups,
                names,
                true,
                None,
                None,
            )?;
        }
        Ok(())
    })
}

/// The 3-D t-SNE as its three 2-D projections, coloured by cell type (or all one colour).
pub fn projections_3d(
    path: &Path,
    title: &str,
    coords: &Array2<f64>,
    cell_types: Option<(&[Option<usize>], &[String])>,
) -> Result<()> {
    let single = vec![Some(0); coords.nrows()];
    let one = ["cells".to_string()];
    let (groups, names) = cell_types.unwrap_or((&single, &one));
    png(path, (1650, 600), |root| {
        root.titled(title, (FAMILY, 24))
            .map_err(|e| e.to_string())?;
        let panels = root.margin(34, 0, 0, 0).split_evenly((1, 3));
        for (k, (area, axes)) in panels.iter().zip([(0, 1), (0, 2), (1, 2)]).enumerate() {
            let name = ["x", "y", "z"];
            let t = format!("{} vs {}", name[axes.1], name[axes.0]);
            scatter(
                area,
                &t,
                coords,
                axes,
                groups,
                names,
                k == 2 && cell_types.is_some(),
                None,
                None,
            )?;
        }
        Ok(())
    })
}

/// Reconstruction per matrix entry and KL per cell over the epochs, one line per model; PNG
/// and, beside it, SVG.
pub fn loss_curves(path: &Path, runs: &[(String, Vec<EpochRecord>)]) -> Result<()> {
    png(path, (1300, 520), |root| draw_loss_curves(root, runs))?;
    svg(&path.with_extension("svg"), (1300, 520), |root| {
        draw_loss_curves(root, runs)
    })
}

fn draw_loss_curves<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    runs: &[(String, Vec<EpochRecord>)],
) -> std::result::Result<(), String>
where
    DB::ErrorType: 'static,
{
    let (left, right) = root.split_horizontally(650);
    type Panel<'a, DB> = (
        &'a DrawingArea<DB, Shift>,
        &'static str,
        fn(&EpochRecord) -> f64,
    );
    let panels: [Panel<'_, _>; 2] = [
        (&left, "reconstruction per matrix entry", |r| {
            r.recon_per_entry
        }),
        (&right, "KL per cell (before β)", |r| r.kl),
    ];
    for (area, title, get) in panels {
        let epochs = runs.iter().map(|r| r.1.len()).max().unwrap_or(1).max(2);
        let yr = range(runs.iter().flat_map(|r| r.1.iter().map(get)));
        let mut chart = ChartBuilder::on(area)
            .caption(title, (FAMILY, 20))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(1f64..epochs as f64, yr)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .label_style((FAMILY, 12))
            .draw()
            .map_err(|e| e.to_string())?;
        for (k, (name, recs)) in runs.iter().enumerate() {
            let c = colour(k);
            chart
                .draw_series(LineSeries::new(
                    recs.iter().map(|r| (r.epoch as f64, get(r))),
                    c.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
                });
        }
        draw_legend(&mut chart, 13, SeriesLabelPosition::MiddleRight)?;
    }
    Ok(())
}

/// Grouped bars: for every model its NMI (geometric), ARI, homogeneity and completeness; PNG
/// and, beside it, SVG.
pub fn score_bars(path: &Path, rows: &[(String, [f64; 4])]) -> Result<()> {
    png(path, (1000, 560), |root| draw_score_bars(root, rows))?;
    svg(&path.with_extension("svg"), (1000, 560), |root| {
        draw_score_bars(root, rows)
    })
}

fn draw_score_bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    rows: &[(String, [f64; 4])],
) -> std::result::Result<(), String>
where
    DB::ErrorType: 'static,
{
    const NAMES: [&str; 4] = ["NMI (geometric)", "ARI", "homogeneity", "completeness"];
    let n = rows.len().max(1) as f64;
    let lo = rows.iter().flat_map(|r| r.1).fold(0.0f64, f64::min);
    let mut chart = ChartBuilder::on(root)
        .caption("clustering scores against the cell types", (FAMILY, 22))
        .margin(12)
        .x_label_area_size(34)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..n, lo.min(0.0)..1.0f64)
        .map_err(|e| e.to_string())?;
    let labels: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(rows.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - i as f64 - 0.5).abs() < 0.26 {
                labels.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .label_style((FAMILY, 14))
        .draw()
        .map_err(|e| e.to_string())?;
    for (m, name) in NAMES.iter().enumerate() {
        let c = colour(m);
        chart
            .draw_series(rows.iter().enumerate().map(|(i, r)| {
                let x0 = i as f64 + 0.1 + 0.2 * m as f64;
                Rectangle::new([(x0, 0.0), (x0 + 0.18, r.1[m])], c.filled())
            }))
            .map_err(|e| e.to_string())?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
    }
    draw_legend(&mut chart, 13, SeriesLabelPosition::UpperRight)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two clusters of mostly type 0 (only one can take its colour), one of type 1, none of
    /// type 2: the matched majority clusters take their types' slots, the other a new slot.
    #[test]
    fn clusters_take_their_majority_type_colour() {
        let labels = [0, 0, 0, 1, 1, 1, 2, 2];
        let types = [
            Some(0),
            Some(0),
            Some(1),
            Some(0),
            Some(0),
            None,
            Some(1),
            Some(1),
        ];
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let slots = cluster_slots(&labels, 3, Some((&types, &names)));
        // Cluster 2 is all type 1; clusters 0 and 1 are mostly type 0, but only one can have
        // it (cluster 0 by the matching's tie rule), and type 2 is no cluster's majority.
        assert_eq!(slots[2], 1);
        assert!(
            slots[..2].contains(&0) && slots[..2].iter().any(|&s| s >= 3),
            "{slots:?}"
        );
        assert_eq!(cluster_slots(&labels, 3, None), vec![0, 1, 2]);
    }
}

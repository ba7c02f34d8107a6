//! Output for people: figures and the run report.

pub mod confusion;
pub mod dotplot;
pub mod memory;
pub mod plots;
pub mod seeds;
pub mod summary;

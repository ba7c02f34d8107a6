//! Output for people: figures and the run report.

pub mod plots;
pub mod summary;

//! The shoplens application: configuration, the running pipeline, the load
//! generator and operator commands. The binary (`src/main.rs`) is a thin CLI
//! over this library, which the end-to-end tests drive in-process.

#![warn(missing_docs)]

pub mod bench;
pub mod generate;
pub mod http_get;
pub mod pipeline;
pub mod replay;
pub mod settings;
pub mod summary;
pub mod topics;

pub use pipeline::{Pipeline, PipelineError};
pub use settings::Settings;

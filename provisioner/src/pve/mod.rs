//! The Proxmox VE API: the client, its errors, tasks, the token, and the upload body.

pub mod client;
pub mod error;
pub mod multipart;
pub mod task;
pub mod token;

pub use client::Pve;
pub use error::PveError;
pub use token::ApiToken;

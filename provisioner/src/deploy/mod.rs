//! Deployment on a Proxmox node: settings and connection ([`context`]), the container spec and
//! its markers ([`spec`]), the template step, container calls, the reconcile plan, and the
//! `up`, `down` and `status` commands.

pub mod container;
pub mod context;
pub mod down;
pub mod plan;
pub mod spec;
pub mod status;
pub mod template;
pub mod up;

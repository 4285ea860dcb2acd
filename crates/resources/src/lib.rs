//! baton's resources: the only code that changes the host — addresses
//! through netlink, frames on the wire, programs started and stopped. Each
//! operation is one step of a set's lifecycle, run by the agent when the
//! core asks for it.

pub mod announce;
pub mod cgroup;
pub mod fence;
pub mod fence_disk;
pub mod ganesha;
pub mod ip;
pub mod mount;
pub mod netlink;
pub mod nfs;
pub mod ocf;
pub mod probe;
pub mod process;
pub mod program;
pub mod resource;
pub mod service;
pub mod undo;

pub use resource::{Context, Fake, Kept, Resource};
pub use undo::Undo;

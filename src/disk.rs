//! `baton disk`: set up and read a shared fence disk
//! (`baton_resources::fence_disk`), like `sbd create|list|message`.

use baton_resources::fence_disk::{Disk, Header, Message};

use crate::cli::{DiskCommand, Failure};

pub fn run(command: &DiskCommand) -> Result<(), Failure> {
    let failed = |e: std::io::Error| Failure::Failed(e.to_string());
    match command {
        DiskCommand::Init { device, nodes, watch, msgwait, force } => {
            let duration = |flag: &str, text: &str| {
                baton_config::parse_duration(text).map_err(|e| Failure::Usage(format!("--{flag}: {e}")))
            };
            let header = Header {
                slots: nodes.clone(),
                watch: duration("watch", watch)?,
                msgwait: duration("msgwait", msgwait)?,
            };
            header.check().map_err(Failure::Usage)?;
            let disk = Disk::init(device, header, *force).map_err(failed)?;
            println!(
                "{}: a fence disk with {} slot(s): {}; no node recorded as gone on alone (a node of two that \
                 boots alone may fence its peer after startup_fence_after)",
                device.display(),
                disk.header.slots.len(),
                disk.header.slots.join(", ")
            );
            Ok(())
        }
        DiskCommand::List { device } => {
            let disk = Disk::open(device).map_err(failed)?;
            let alone = match disk.alone() {
                Ok(holder) => holder.unwrap_or_else(|| "-".into()),
                Err(e) => format!("? ({e})"),
            };
            println!(
                "{}: watch {:?}, msgwait {:?}, alone {alone}",
                device.display(),
                disk.header.watch,
                disk.header.msgwait
            );
            for slot in disk.slots().map_err(failed)? {
                println!("{}\t{}\t{}", slot.node, slot.message.name(), slot.from);
            }
            Ok(())
        }
        DiskCommand::Message { device, node, message } => {
            let message = Message::parse(message).map_err(Failure::Usage)?;
            let disk = Disk::open(device).map_err(failed)?;
            disk.write(node, message, "operator").map_err(failed)?;
            println!("{}: {} written into {node}'s slot", device.display(), message.name());
            Ok(())
        }
    }
}

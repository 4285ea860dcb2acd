//! Frames between peers' agents, as signed by a peer holding the key (so
//! the JSON decoder of every Raft message is reached) and as raw bytes.
#![no_main]

use baton_agent::raft::net::{Reply, Request, Seal};
use baton_proto::Keys;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else { return };
    let keys = Keys::new(vec![b"fuzzing secret, 32 bytes or more".to_vec()]);
    let nonces = [7u8; 32];
    let mut theirs = Seal::new(keys.clone(), nonces, 1 - (mode & 1));
    let mut mine = Seal::new(keys, nonces, mode & 1);
    let frame = if mode & 2 == 0 { theirs.seal(body)[4..].to_vec() } else { body.to_vec() };
    if mode & 1 == 0 {
        let _ = mine.open::<Reply>(&frame);
    } else {
        let _ = mine.open::<Request>(&frame);
    }
    if let Some(prefix) = body.get(..4) {
        let _ = Seal::frame_len(prefix.try_into().expect("four bytes"));
    }
});

//! Heartbeat datagrams: raw bytes as they arrive, and bodies signed with
//! the cluster's key so the fuzzer also reaches the fields behind the MAC.
#![no_main]

use baton_proto::{heartbeat::Verifier, Keys};
use libfuzzer_sys::fuzz_target;

const CLUSTER: u64 = 0x6261_746f_6e21_2121;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let keys = Keys::new(vec![b"fuzzing secret, 32 bytes or more".to_vec()]);
    let mut verifier = Verifier::new(CLUSTER, 3, 2, keys.clone());
    let mut datagram = rest.to_vec();
    if mode & 1 == 1 {
        // A body that passes the MAC: the cluster id forced, the tag appended.
        if datagram.len() >= 13 {
            datagram[5..13].copy_from_slice(&CLUSTER.to_be_bytes());
        }
        let tag = keys.sign(&datagram);
        datagram.extend_from_slice(&tag);
    }
    let first = verifier.open(mode >> 1 & 3, &datagram);
    // The same datagram again is never accepted twice.
    if first.is_ok() {
        assert!(verifier.open(mode >> 1 & 3, &datagram).is_err());
    }
});

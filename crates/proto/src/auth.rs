//! The cluster secret as MAC keys. During a secret rotation a node accepts
//! packets under any of its keys and signs with the first. Clones share
//! their keys, so a reload replaces them for every socket at once.

use std::sync::{Arc, RwLock};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub const MAC_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// An identifier of the cluster, derived from its name: packets of a
/// cluster with another name are "foreign", not "forged".
pub fn cluster_id(name: &str) -> u64 {
    let digest = Sha256::digest(format!("baton cluster {name}").as_bytes());
    u64::from_be_bytes(digest[..8].try_into().expect("a SHA-256 digest has 32 bytes"))
}

#[derive(Clone)]
pub struct Keys {
    keys: Arc<RwLock<Vec<Vec<u8>>>>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys({} secret(s), not shown)", self.read().len())
    }
}

impl Keys {
    /// The first key signs; every key is accepted.
    pub fn new(keys: Vec<Vec<u8>>) -> Self {
        Self::check(&keys);
        Keys { keys: Arc::new(RwLock::new(keys)) }
    }

    fn check(keys: &[Vec<u8>]) {
        assert!(!keys.is_empty() && keys.iter().all(|k| !k.is_empty()), "a cluster needs a secret");
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Vec<u8>>> {
        self.keys.read().unwrap_or_else(|p| p.into_inner())
    }

    /// New keys for this and every clone (a secret rotation step).
    pub fn replace(&self, keys: Vec<Vec<u8>>) {
        Self::check(&keys);
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
    }

    pub fn sign(&self, data: &[u8]) -> [u8; MAC_LEN] {
        let mut mac = HmacSha256::new_from_slice(&self.read()[0]).expect("HMAC takes keys of any length");
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// Constant-time check of `tag` over `data` under any accepted key.
    pub fn verify(&self, data: &[u8], tag: &[u8]) -> bool {
        self.read().iter().any(|k| {
            let mut mac = HmacSha256::new_from_slice(k).expect("HMAC takes keys of any length");
            mac.update(data);
            mac.verify_slice(tag).is_ok()
        })
    }
}

//! Checks before the agent starts deciding: OCF agents advise their own
//! timeouts in `meta-data`, and a resource whose configuration names none
//! gets the agent's advice, as in Pacemaker; a systemd unit that is enabled
//! at boot is warned about.

use std::path::PathBuf;

use baton_config::{Config, ResourceKind, SetConfig};
use baton_core::Topology;
use baton_resources::ocf;

/// The OCF agent of resource `i` of `set`, if it is one; `tmp` is its HA_RSCTMP.
pub fn ocf_agent(set: &SetConfig, i: usize, tmp: Option<PathBuf>) -> Option<ocf::Agent> {
    let ResourceKind::Ocf { provider, agent, params } = &set.resources[i].kind else { return None };
    Some(ocf::Agent {
        root: ocf::root(),
        provider: provider.clone(),
        kind: agent.clone(),
        instance: format!("{}-{i}", set.name),
        params: params.clone(),
        tmp,
    })
}

pub async fn apply(config: &Config, topo: &mut Topology) {
    for (s, set) in config.sets.iter().enumerate() {
        for (i, r) in set.resources.iter().enumerate() {
            if let ResourceKind::Systemd { unit } = &r.kind {
                if baton_resources::service::enabled_at_boot(unit).await {
                    tracing::warn!(
                        "baton: warning: set {}: unit {unit} is enabled at boot, so systemd may start it on a node \
                         that does not own the set; run `systemctl disable {unit}`",
                        set.name
                    );
                }
            }
            let Some(agent) = ocf_agent(set, i, None) else { continue };
            if !agent.installed() {
                tracing::warn!("baton: set {}: OCF agent {} is not installed here", set.name, agent.path().display());
                continue;
            }
            let [start, stop, monitor, interval] = agent.advised().await;
            let spec = &mut topo.sets[s].resources[i];
            if r.timeout.is_none() {
                spec.start_timeout = start.unwrap_or(spec.start_timeout);
                spec.stop_timeout = stop.unwrap_or(spec.stop_timeout);
                spec.monitor_timeout = monitor.unwrap_or(spec.monitor_timeout);
            }
            if r.interval.is_none() {
                spec.monitor_interval = interval.or(spec.monitor_interval);
            }
        }
    }
}

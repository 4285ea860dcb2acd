//! OCF agents advise their own timeouts in `meta-data`; a resource whose
//! configuration names none gets the agent's advice, as in Pacemaker.

use baton_config::{Config, ResourceKind};
use baton_core::Topology;
use baton_resources::ocf;

pub async fn apply(config: &Config, topo: &mut Topology) {
    for (s, set) in config.sets.iter().enumerate() {
        for (i, r) in set.resources.iter().enumerate() {
            let ResourceKind::Ocf { provider, agent, params } = &r.kind else { continue };
            let agent = ocf::Agent {
                root: ocf::root(),
                provider: provider.clone(),
                kind: agent.clone(),
                instance: format!("{}-{i}", set.name),
                params: params.clone(),
                tmp: None,
            };
            if !agent.installed() {
                eprintln!("baton: set {}: OCF agent {} is not installed here", set.name, agent.path().display());
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

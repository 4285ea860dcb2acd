use crate::command::Applied;
use crate::{ClusterState, Command, Exclusion, Membership, Phase, Rejected};

/// Three nodes, all joined, one set.
fn cluster() -> ClusterState {
    let mut s = ClusterState::new(3, 1);
    for node in 0..3 {
        s.apply(&Command::Join { node, epoch: 0, incarnation: 1 }).unwrap();
    }
    s
}

#[test]
fn eviction_needs_a_majority_of_suspicions() {
    let mut s = cluster();
    s.apply(&Command::Assign { set: 0, node: 0, generation: 0 }).unwrap();
    assert_eq!(s.apply(&Command::Suspect { voter: 1, node: 0, epoch: 0, round: 1 }), Ok(Applied::Done));
    assert_eq!(s.set(0).owner, Some(0), "one suspicion of three voters evicts nothing");
    assert_eq!(s.apply(&Command::Suspect { voter: 2, node: 0, epoch: 0, round: 1 }), Ok(Applied::Evicted(0)));
    assert_eq!(s.set(0).owner, None);
    assert_eq!(s.set(0).generation, 2);
    assert_eq!(s.node(0).epoch, 1);
    assert_eq!(s.node(0).membership, Membership::Offline);
    assert!(s.active_suspects(0).is_empty());
}

#[test]
fn two_nodes_without_witness_never_evict_each_other() {
    let mut s = ClusterState::new(2, 1);
    s.apply(&Command::Join { node: 0, epoch: 0, incarnation: 1 }).unwrap();
    s.apply(&Command::Join { node: 1, epoch: 0, incarnation: 1 }).unwrap();
    assert_eq!(s.apply(&Command::Suspect { voter: 1, node: 0, epoch: 0, round: 1 }), Ok(Applied::Done));
    assert!(s.is_online(0));
}

#[test]
fn a_node_goes_on_alone_only_with_its_peer_offline_and_then_only_it_votes() {
    let mut s = ClusterState::new(2, 1);
    s.apply(&Command::Join { node: 0, epoch: 0, incarnation: 1 }).unwrap();
    s.apply(&Command::Join { node: 1, epoch: 0, incarnation: 1 }).unwrap();
    assert_eq!(s.apply(&Command::Alone { node: 0 }), Err(Rejected::PeerOnline { node: 0, peer: 1 }));
    assert_eq!(s.apply(&Command::Together), Err(Rejected::NotAlone));
    s.apply(&Command::Fenced { node: 1, epoch: 0, incarnation: 1 }).unwrap();
    assert_eq!(s.apply(&Command::Alone { node: 0 }), Ok(Applied::Done));
    assert_eq!((s.alone, s.majority()), (Some(0), 1));
    s.apply(&Command::Join { node: 1, epoch: 1, incarnation: 2 }).unwrap();
    // The peer, back but not yet a voter, cannot evict the one that is.
    assert_eq!(s.apply(&Command::Suspect { voter: 1, node: 0, epoch: 0, round: 1 }), Ok(Applied::Done));
    assert!(s.is_online(0));
    assert_eq!(s.apply(&Command::Suspect { voter: 0, node: 1, epoch: 1, round: 1 }), Ok(Applied::Evicted(1)));
    s.apply(&Command::Join { node: 1, epoch: 2, incarnation: 3 }).unwrap();
    assert_eq!(s.apply(&Command::Together), Ok(Applied::Done));
    assert_eq!((s.alone, s.majority()), (None, 2));
}

#[test]
fn a_withdrawn_suspicion_does_not_count_and_stale_rounds_are_rejected() {
    let mut s = cluster();
    s.apply(&Command::Suspect { voter: 1, node: 0, epoch: 0, round: 1 }).unwrap();
    s.apply(&Command::Unsuspect { voter: 1, node: 0, round: 1 }).unwrap();
    // The first suspicion, delivered again late, must not come back to life.
    assert_eq!(
        s.apply(&Command::Suspect { voter: 1, node: 0, epoch: 0, round: 1 }),
        Err(Rejected::StaleRound { voter: 1, node: 0, have: 1, got: 1 })
    );
    s.apply(&Command::Suspect { voter: 2, node: 0, epoch: 0, round: 1 }).unwrap();
    assert!(s.is_online(0), "only one suspicion stands");
}

#[test]
fn suspicions_of_an_old_epoch_do_not_evict_the_new_one() {
    let mut s = cluster();
    s.apply(&Command::Suspect { voter: 1, node: 0, epoch: 0, round: 1 }).unwrap();
    s.apply(&Command::Suspect { voter: 2, node: 0, epoch: 0, round: 1 }).unwrap();
    s.apply(&Command::Join { node: 0, epoch: 1, incarnation: 1 }).unwrap();
    assert_eq!(
        s.apply(&Command::Suspect { voter: 1, node: 0, epoch: 0, round: 2 }),
        Err(Rejected::StaleEpoch { node: 0, have: 1, got: 0 })
    );
    assert_eq!(s.apply(&Command::Suspect { voter: 0, node: 0, epoch: 1, round: 1 }), Err(Rejected::SelfSuspicion(0)));
}

#[test]
fn a_move_is_two_phase_and_stale_generations_are_rejected() {
    let mut s = cluster();
    s.apply(&Command::Assign { set: 0, node: 0, generation: 0 }).unwrap();
    s.apply(&Command::Started { set: 0, node: 0, generation: 1 }).unwrap();
    assert!(s.set(0).running);
    s.apply(&Command::Move { set: 0, from: 0, to: Some(1), generation: 1, direct: false }).unwrap();
    assert_eq!(s.set(0).phase, Phase::Releasing { to: Some(1), direct: false });
    assert_eq!(s.set(0).owner, Some(0), "the owner keeps the set until it has stopped it");
    s.apply(&Command::Released { set: 0, node: 0, generation: 1 }).unwrap();
    assert_eq!((s.set(0).owner, s.set(0).generation, s.set(0).running), (Some(1), 2, false));
    // A duplicate of the release, or a late Started from the old owner, is stale.
    assert!(s.apply(&Command::Released { set: 0, node: 0, generation: 1 }).is_err());
    assert!(s.apply(&Command::Started { set: 0, node: 0, generation: 1 }).is_err());
}

#[test]
fn assign_refuses_owned_frozen_blocked_and_ineligible() {
    let mut s = cluster();
    s.apply(&Command::Assign { set: 0, node: 0, generation: 0 }).unwrap();
    assert_eq!(s.apply(&Command::Assign { set: 0, node: 1, generation: 1 }), Err(Rejected::Owned { set: 0, owner: 0 }));
    s.apply(&Command::StopFailed { set: 0, node: 0, generation: 1 }).unwrap();
    assert_eq!(
        s.apply(&Command::Move { set: 0, from: 0, to: Some(1), generation: 1, direct: false }),
        Err(Rejected::Blocked { set: 0, node: 0 })
    );
    // Fencing the node that failed its stop unblocks the set.
    assert_eq!(s.apply(&Command::Fenced { node: 0, epoch: 0, incarnation: 1 }), Ok(Applied::Evicted(0)));
    assert_eq!((s.set(0).owner, s.set(0).blocked), (None, None));
    s.apply(&Command::Freeze { set: 0, frozen: true }).unwrap();
    assert_eq!(s.apply(&Command::Assign { set: 0, node: 1, generation: 2 }), Err(Rejected::Frozen(0)));
    s.apply(&Command::Freeze { set: 0, frozen: false }).unwrap();
    s.apply(&Command::Standby { node: 1, standby: true }).unwrap();
    assert_eq!(
        s.apply(&Command::Assign { set: 0, node: 1, generation: 2 }),
        Err(Rejected::Ineligible { set: 0, node: 1 })
    );
    assert_eq!(s.apply(&Command::Assign { set: 0, node: 0, generation: 2 }), Err(Rejected::NotOnline(0)));
    s.apply(&Command::Assign { set: 0, node: 2, generation: 2 }).unwrap();
    s.apply(&Command::StartFailed { set: 0, node: 2, generation: 3, exclusion: Exclusion::Vetoed }).unwrap();
    assert_eq!(
        s.apply(&Command::Assign { set: 0, node: 2, generation: 4 }),
        Err(Rejected::Ineligible { set: 0, node: 2 })
    );
    s.apply(&Command::Clear { set: 0 }).unwrap();
    s.apply(&Command::Assign { set: 0, node: 2, generation: 4 }).unwrap();
}

#[test]
fn eviction_of_a_move_target_cancels_the_hand_over_target() {
    let mut s = cluster();
    s.apply(&Command::Assign { set: 0, node: 0, generation: 0 }).unwrap();
    s.apply(&Command::Move { set: 0, from: 0, to: Some(1), generation: 1, direct: false }).unwrap();
    s.apply(&Command::Suspect { voter: 0, node: 1, epoch: 0, round: 1 }).unwrap();
    s.apply(&Command::Suspect { voter: 2, node: 1, epoch: 0, round: 1 }).unwrap();
    assert_eq!(s.set(0).phase, Phase::Releasing { to: None, direct: false });
    s.apply(&Command::Released { set: 0, node: 0, generation: 1 }).unwrap();
    assert_eq!(s.set(0).owner, None);
}

#[test]
fn unknown_ids_are_rejected_without_panicking() {
    let mut s = cluster();
    assert_eq!(s.apply(&Command::Join { node: 9, epoch: 0, incarnation: 1 }), Err(Rejected::UnknownNode(9)));
    assert_eq!(s.apply(&Command::Freeze { set: 4, frozen: true }), Err(Rejected::UnknownSet(4)));
    assert_eq!(
        s.apply(&Command::Move { set: 0, from: 0, to: Some(7), generation: 0, direct: false }),
        Err(Rejected::UnknownNode(7))
    );
}

#[test]
fn the_state_survives_a_round_trip_through_json() {
    let mut s = cluster();
    s.apply(&Command::Assign { set: 0, node: 0, generation: 0 }).unwrap();
    s.apply(&Command::Suspect { voter: 1, node: 0, epoch: 0, round: 1 }).unwrap();
    s.apply(&Command::StartFailed { set: 0, node: 0, generation: 1, exclusion: Exclusion::Vetoed }).unwrap();
    let text = serde_json::to_string(&s).unwrap();
    assert_eq!(serde_json::from_str::<ClusterState>(&text).unwrap(), s);
    let cmd = Command::Move { set: 0, from: 1, to: None, generation: 3, direct: false };
    assert_eq!(serde_json::from_str::<Command>(&serde_json::to_string(&cmd).unwrap()).unwrap(), cmd);
}

#[test]
fn with_fencing_required_only_a_fence_evicts() {
    let mut s = ClusterState::new(3, 1).requiring_fence(vec![true, true, false]);
    for node in 0..3 {
        s.apply(&Command::Join { node, epoch: 0, incarnation: 1 }).unwrap();
    }
    s.apply(&Command::Assign { set: 0, node: 0, generation: 0 }).unwrap();
    s.apply(&Command::Suspect { voter: 1, node: 0, epoch: 0, round: 1 }).unwrap();
    assert_eq!(s.apply(&Command::Suspect { voter: 2, node: 0, epoch: 0, round: 1 }), Ok(Applied::Done));
    assert_eq!(s.set(0).owner, Some(0), "a majority of suspicions is not enough");
    assert_eq!(s.apply(&Command::Fenced { node: 0, epoch: 0, incarnation: 1 }), Ok(Applied::Evicted(0)));
    assert_eq!(s.set(0).owner, None);
}

#[test]
fn maintenance_refuses_placement_and_moves_but_owners_still_report() {
    let mut s = cluster();
    s.apply(&Command::Assign { set: 0, node: 0, generation: 0 }).unwrap();
    s.apply(&Command::Maintenance { on: true }).unwrap();
    assert!(s.is_frozen(0) && !s.set(0).frozen, "left alone without touching the set's own freeze");
    assert_eq!(
        s.apply(&Command::Move { set: 0, from: 0, to: Some(1), generation: 1, direct: false }),
        Err(Rejected::Maintenance)
    );
    assert_eq!(s.apply(&Command::Started { set: 0, node: 0, generation: 1 }), Ok(Applied::Done));
    // Eviction is about safety, not placement: it still happens, and the
    // freed set waits for the end of maintenance.
    s.apply(&Command::Suspect { voter: 1, node: 0, epoch: 0, round: 1 }).unwrap();
    assert_eq!(s.apply(&Command::Suspect { voter: 2, node: 0, epoch: 0, round: 1 }), Ok(Applied::Evicted(0)));
    assert_eq!(s.apply(&Command::Assign { set: 0, node: 1, generation: 2 }), Err(Rejected::Maintenance));
    s.apply(&Command::Maintenance { on: false }).unwrap();
    assert_eq!(s.apply(&Command::Assign { set: 0, node: 1, generation: 2 }), Ok(Applied::Done));
}

#[test]
fn a_lock_has_one_holder_dies_with_its_epoch_and_tokens_only_grow() {
    let mut s = cluster();
    let lock = |node, epoch| Command::Lock { name: "cron".into(), node, epoch };
    assert_eq!(s.apply(&lock(0, 0)), Ok(Applied::Done));
    let first = s.locks["cron"];
    assert_eq!((first.holder, first.token), (0, 1));
    assert_eq!(s.apply(&lock(1, 0)), Err(Rejected::LockHeld { holder: 0 }));
    assert_eq!(s.apply(&lock(0, 0)), Ok(Applied::Done), "asking again keeps the token");
    assert_eq!(s.locks["cron"].token, 1);
    // The holder is evicted: the lock is free, and the next grant's token is larger.
    s.apply(&Command::Suspect { voter: 1, node: 0, epoch: 0, round: 1 }).unwrap();
    assert_eq!(s.apply(&Command::Suspect { voter: 2, node: 0, epoch: 0, round: 1 }), Ok(Applied::Evicted(0)));
    assert!(!s.locks.contains_key("cron"));
    assert_eq!(s.apply(&lock(0, 0)), Err(Rejected::StaleEpoch { node: 0, have: 1, got: 0 }), "a stale request");
    assert_eq!(s.apply(&lock(1, 0)), Ok(Applied::Done));
    assert_eq!(s.locks["cron"].token, 2);
    // Only the holder, with its token, gives it back.
    let unlock = |node, token| Command::Unlock { name: "cron".into(), node, token };
    assert_eq!(s.apply(&unlock(1, 1)), Err(Rejected::NotLockHolder(1)));
    assert_eq!(s.apply(&unlock(2, 2)), Err(Rejected::NotLockHolder(2)));
    assert_eq!(s.apply(&unlock(1, 2)), Ok(Applied::Done));
    assert!(s.locks.is_empty());
}

#[test]
fn a_stopping_agent_s_standby_is_undone_by_its_return_but_an_operator_s_is_not() {
    let mut s = ClusterState::new(3, 1);
    s.apply(&Command::Leave { node: 1 }).unwrap();
    assert!(s.node(1).standby && s.node(1).leaving);
    s.apply(&Command::Back { node: 1 }).unwrap();
    assert!(!s.node(1).standby && !s.node(1).leaving);
    // An operator's standby after the node left wins over a late return.
    s.apply(&Command::Leave { node: 2 }).unwrap();
    s.apply(&Command::Standby { node: 2, standby: true }).unwrap();
    s.apply(&Command::Back { node: 2 }).unwrap();
    assert!(s.node(2).standby && !s.node(2).leaving);
}

/// Found by the simulator (seed 79, once the guard's release took time): a
/// node powered off by a fence booted again, held a lease in its old epoch
/// and restarted its sets before the fence's confirmation was agreed; the
/// confirmation then evicted it and gave its sets away while its guard was
/// still releasing them.
#[test]
fn a_restarted_agent_joins_again_and_a_fence_of_its_older_incarnation_is_void() {
    let mut s = cluster();
    assert_eq!(s.node(0).incarnation, 1);
    assert_eq!(s.apply(&Command::Join { node: 0, epoch: 0, incarnation: 1 }), Err(Rejected::AlreadyOnline(0)));
    // The agent restarted: it joins again in its new incarnation, same epoch.
    assert_eq!(s.apply(&Command::Join { node: 0, epoch: 0, incarnation: 2 }), Ok(Applied::Done));
    assert_eq!((s.node(0).epoch, s.node(0).incarnation), (0, 2));
    // A fence asked for while incarnation 1 was silent no longer applies.
    assert_eq!(
        s.apply(&Command::Fenced { node: 0, epoch: 0, incarnation: 1 }),
        Err(Rejected::StaleIncarnation { node: 0, have: 2, got: 1 })
    );
    assert!(s.is_online(0));
    // A late join of an older incarnation changes nothing.
    assert_eq!(
        s.apply(&Command::Join { node: 0, epoch: 0, incarnation: 1 }),
        Err(Rejected::StaleIncarnation { node: 0, have: 2, got: 1 })
    );
    assert_eq!(s.apply(&Command::Fenced { node: 0, epoch: 0, incarnation: 2 }), Ok(Applied::Evicted(0)));
}

/// Found by the simulator's long search (seed 10664): a node a commit
/// behind saw the new owner answer for the address and took it for a
/// second holder. A sighting is agreed only at the generation it was made.
#[test]
fn a_duplicate_is_agreed_only_at_the_generation_it_was_seen_at() {
    let mut s = cluster();
    s.apply(&Command::Assign { set: 0, node: 0, generation: 0 }).unwrap();
    let seen = |generation| Command::Duplicate {
        set: 0,
        generation,
        strangers: vec![crate::Stranger { mac: [2, 0, 0, 0, 0, 2], node: Some(2) }],
    };
    assert_eq!(s.apply(&seen(1)), Ok(Applied::Done));
    assert_eq!(s.apply(&seen(0)), Err(Rejected::StaleGeneration { set: 0, have: 1, got: 0 }));
    assert_eq!(s.set(0).owner, Some(0), "a sighting changes nothing");
}

/// ClusterLabs/pcs#697: a move's preference must not outlive its node.
#[test]
fn a_move_s_pin_ends_when_its_node_is_lost_put_in_standby_or_leaves() {
    let mut s = cluster();
    let pin = |s: &mut ClusterState| s.apply(&Command::Pin { set: 0, node: Some(1) }).unwrap();
    pin(&mut s);
    s.apply(&Command::Suspect { voter: 0, node: 1, epoch: 0, round: 1 }).unwrap();
    s.apply(&Command::Suspect { voter: 2, node: 1, epoch: 0, round: 1 }).unwrap();
    assert_eq!(s.set(0).pin, None, "evicted");
    pin(&mut s);
    s.apply(&Command::Standby { node: 2, standby: true }).unwrap();
    assert_eq!(s.set(0).pin, Some(1), "another node's standby leaves it");
    s.apply(&Command::Standby { node: 1, standby: true }).unwrap();
    assert_eq!(s.set(0).pin, None, "standby");
    pin(&mut s);
    s.apply(&Command::Leave { node: 1 }).unwrap();
    assert_eq!(s.set(0).pin, None, "left");
}

#[test]
fn an_expiry_ends_only_the_exclusion_it_names() {
    let mut s = cluster();
    s.apply(&Command::Assign { set: 0, node: 0, generation: 0 }).unwrap();
    let g = s.set(0).generation;
    s.apply(&Command::StartFailed { set: 0, node: 0, generation: g, exclusion: Exclusion::Failed }).unwrap();
    assert_eq!(s.set(0).excluded_at.get(&0), Some(&g));
    let stale = Command::Expire { set: 0, node: 0, since: g - 1 };
    assert_eq!(s.apply(&stale), Err(Rejected::NotExcluded { set: 0, node: 0, since: g - 1 }));
    assert!(s.set(0).excluded.contains_key(&0));
    assert_eq!(s.apply(&Command::Expire { set: 0, node: 0, since: g }), Ok(Applied::Done));
    assert!(s.set(0).excluded.is_empty() && s.set(0).excluded_at.is_empty());
    assert!(s.apply(&Command::Expire { set: 0, node: 0, since: g }).is_err(), "once");
}

/// A set spec of `name` preferring `nodes` (none: retired).
fn spec(name: &str, nodes: &[u8]) -> crate::SetSpec {
    crate::SetSpec {
        name: name.into(),
        nodes: nodes.to_vec(),
        failback: crate::Failback::Never,
        max_restarts: 1,
        restart_window: std::time::Duration::from_secs(60),
        failure_timeout: None,
        resources: Vec::new(),
        hook_timeout: std::time::Duration::from_secs(1),
        definition: String::new(),
    }
}

fn configure(generation: u64, sets: Vec<crate::SetSpec>) -> Command {
    Command::Configure {
        generation,
        digest: format!("d{generation}"),
        text: String::new(),
        sets,
        guard_margin: std::time::Duration::from_millis(20 * generation),
        timing: Some(crate::AgreedTiming {
            heartbeat_interval: std::time::Duration::from_millis(100),
            lease: std::time::Duration::from_millis(1000 + generation),
            startup_fence: None,
        }),
        nodes: None,
    }
}

#[test]
fn a_configuration_retires_a_changed_set_and_its_new_slot_waits_until_the_old_one_stopped() {
    let mut s = cluster();
    s.apply(&Command::Assign { set: 0, node: 0, generation: 0 }).unwrap();
    s.apply(&Command::Move { set: 0, from: 0, to: Some(1), generation: 1, direct: false }).unwrap();
    assert_eq!(s.apply(&configure(2, vec![spec("web", &[])])), Err(Rejected::StaleConfig { have: 0, got: 2 }));
    assert_eq!(s.apply(&configure(1, vec![])), Err(Rejected::ConfigShape("0 sets for 1 slots".into())));
    s.apply(&configure(1, vec![spec("web", &[]), spec("web", &[0, 1])])).unwrap();
    assert_eq!((s.sets.len(), s.config_generation()), (2, 1));
    assert!(s.retired(0) && !s.retired(1) && (s.set(1).since, s.set(0).retired_at) == (1, 1));
    assert_eq!(s.set(0).phase, Phase::Releasing { to: None, direct: false }, "a retired set is released to nobody");
    assert!(s.set(1).generation > s.set(0).generation, "a new slot starts above every generation before it");
    let fresh = s.set(1).generation;
    assert_eq!(s.apply(&Command::Assign { set: 1, node: 1, generation: fresh }), Err(Rejected::Retiring { set: 0 }));
    s.apply(&Command::Released { set: 0, node: 0, generation: 1 }).unwrap();
    assert_eq!(s.set(0).owner, None, "released to nobody, not to the node the move named");
    assert_eq!(s.apply(&Command::Assign { set: 0, node: 1, generation: 2 }), Err(Rejected::Retired(0)));
    assert_eq!(s.apply(&Command::Assign { set: 1, node: 1, generation: fresh }), Ok(Applied::Done));
    let again = configure(2, vec![spec("web", &[0]), spec("web", &[0, 1])]);
    assert!(matches!(s.apply(&again), Err(Rejected::ConfigShape(_))), "a retired slot never runs again");
    let renamed = configure(2, vec![spec("web", &[]), spec("www", &[0, 1])]);
    assert!(matches!(s.apply(&renamed), Err(Rejected::ConfigShape(_))), "a slot keeps its set's name");
    let smaller = Command::Configure {
        generation: 2,
        digest: "d2".into(),
        text: String::new(),
        sets: vec![spec("web", &[]), spec("web", &[0, 1])],
        guard_margin: std::time::Duration::ZERO,
        timing: None,
        nodes: None,
    };
    s.apply(&smaller).unwrap();
    let agreed = s.config.as_ref().unwrap();
    assert_eq!(agreed.guard_margin, std::time::Duration::from_millis(20), "the agreed release budget never shrinks");
    let lease = agreed.timing.map(|t| t.lease);
    assert_eq!(lease, Some(std::time::Duration::from_millis(1001)), "a change without timing keeps the agreed one");
}

#[test]
fn drift_is_a_file_other_than_the_agreed_one() {
    let mut s = cluster();
    s.apply(&Command::Config { node: 0, digest: "a".into() }).unwrap();
    s.apply(&Command::Config { node: 1, digest: "a".into() }).unwrap();
    assert!(!s.config_drift(), "the same file everywhere, none agreed");
    s.apply(&Command::Configure {
        generation: 1,
        digest: "b".into(),
        text: String::new(),
        sets: vec![spec("web", &[0])],
        guard_margin: std::time::Duration::ZERO,
        timing: None,
        nodes: None,
    })
    .unwrap();
    assert!(s.config_drift() && s.node_drifts(0) && !s.node_drifts(2), "a node that said nothing does not drift");
    s.apply(&Command::Config { node: 0, digest: "b".into() }).unwrap();
    assert!(!s.node_drifts(0) && s.node_drifts(1));
}

/// Node slots `a`, `b`, `c`, … (the first `retired` of them removed).
fn slots(count: usize, retired: &[usize]) -> Vec<crate::NodeSpec> {
    (0..count)
        .map(|i| crate::NodeSpec {
            name: ((b'a' + i as u8) as char).to_string(),
            witness: false,
            links: 1,
            retired: retired.contains(&i),
        })
        .collect()
}

fn change_nodes(generation: u64, sets: Vec<crate::SetSpec>, nodes: Vec<crate::NodeSpec>) -> Command {
    match configure(generation, sets) {
        Command::Configure { generation, digest, text, sets, guard_margin, timing, .. } => {
            Command::Configure { generation, digest, text, sets, guard_margin, timing, nodes: Some(nodes) }
        }
        _ => unreachable!(),
    }
}

#[test]
fn a_node_is_added_or_removed_one_at_a_time_once_every_online_node_acknowledged_the_last_change() {
    let mut s = cluster();
    let web = |nodes: &[u8]| vec![spec("web", nodes)];
    assert!(matches!(s.apply(&change_nodes(1, web(&[0]), slots(5, &[]))), Err(Rejected::NodesShape(_))));
    assert_eq!(s.apply(&change_nodes(1, web(&[0, 3]), slots(3, &[]))), Err(Rejected::UnknownNode(3)));
    // d added in slot 3, and may be named by a set in the same change.
    s.apply(&change_nodes(1, web(&[0, 3]), slots(4, &[]))).unwrap();
    assert_eq!((s.nodes.len(), s.members(), s.majority()), (4, 1, 3));
    assert_eq!(s.members_behind(), [0, 1, 2], "the online nodes still count by three voters");
    assert_eq!(s.apply(&change_nodes(2, web(&[0]), slots(4, &[3]))), Err(Rejected::MembersBehind(0)));
    for node in 0..3 {
        s.apply(&Command::Members { node, epoch: 0, generation: 1 }).unwrap();
    }
    let ahead = s.apply(&Command::Members { node: 0, epoch: 0, generation: 2 });
    assert_eq!(ahead, Err(Rejected::StaleConfig { have: 1, got: 2 }), "no node counts by a change not agreed");
    s.apply(&Command::Join { node: 3, epoch: 0, incarnation: 1 }).unwrap();
    assert_eq!((s.node(3).members, s.members_behind().len()), (1, 0), "a node joins from the latest membership");
    // Three suspicions of four evict; two do not.
    s.apply(&Command::Suspect { voter: 1, node: 0, epoch: 0, round: 1 }).unwrap();
    assert_eq!(s.apply(&Command::Suspect { voter: 2, node: 0, epoch: 0, round: 1 }), Ok(Applied::Done));
    s.apply(&Command::Unsuspect { voter: 1, node: 0, round: 2 }).unwrap();
    s.apply(&Command::Unsuspect { voter: 2, node: 0, round: 2 }).unwrap();
    // d owns web: it cannot be removed until it runs nothing.
    s.apply(&Command::Assign { set: 0, node: 3, generation: 0 }).unwrap();
    let without_d = change_nodes(2, web(&[0]), slots(4, &[3]));
    assert_eq!(s.apply(&without_d), Err(Rejected::Owned { set: 0, owner: 3 }));
    s.apply(&Command::Move { set: 0, from: 3, to: Some(0), generation: 1, direct: false }).unwrap();
    s.apply(&Command::Released { set: 0, node: 3, generation: 1 }).unwrap();
    let two_at_once = change_nodes(2, web(&[0]), slots(4, &[2, 3]));
    assert!(matches!(s.apply(&two_at_once), Err(Rejected::NodesShape(_))));
    assert_eq!(s.apply(&change_nodes(2, web(&[3]), slots(4, &[3]))), Err(Rejected::NodeRetired(3)));
    s.apply(&without_d).unwrap();
    assert!(s.node(3).retired && !s.is_online(3) && s.majority() == 2 && !s.votes(3));
    assert_eq!(s.apply(&Command::Join { node: 3, epoch: 1, incarnation: 2 }), Err(Rejected::NodeRetired(3)));
    assert_eq!(s.apply(&configure(3, web(&[0, 3]))), Err(Rejected::NodeRetired(3)), "nor in a later change's sets");
    assert_eq!(s.check_eligible(0, 3), Err(Rejected::NodeRetired(3)));
    let back = change_nodes(3, web(&[0]), slots(4, &[]));
    assert!(matches!(s.apply(&back), Err(Rejected::MembersBehind(_)) | Err(Rejected::NodesShape(_))));
    // With every node counting by three voters again, two suspicions evict.
    for node in 0..3 {
        s.apply(&Command::Members { node, epoch: 0, generation: 2 }).unwrap();
    }
    assert!(matches!(s.apply(&back), Err(Rejected::NodesShape(_))), "a removed slot is never reused");
    s.apply(&Command::Suspect { voter: 1, node: 0, epoch: 0, round: 3 }).unwrap();
    assert_eq!(s.apply(&Command::Suspect { voter: 2, node: 0, epoch: 0, round: 3 }), Ok(Applied::Evicted(0)));
}

/// A direct move: the set at generation 1, released by node 0 directly to
/// node 1 (ARCHITECTURE.md, "A planned move handed over directly").
fn direct_move() -> ClusterState {
    let mut s = cluster();
    s.apply(&Command::Assign { set: 0, node: 0, generation: 0 }).unwrap();
    s.apply(&Command::Move { set: 0, from: 0, to: Some(1), generation: 1, direct: true }).unwrap();
    assert_eq!(s.set(0).phase, Phase::Releasing { to: Some(1), direct: true });
    s
}

#[test]
fn a_direct_move_keeps_its_target_whatever_happens_until_the_set_changes_hands() {
    // Released: the target gets the set even if it went into standby since.
    let mut s = direct_move();
    s.apply(&Command::Standby { node: 1, standby: true }).unwrap();
    s.apply(&Command::Released { set: 0, node: 0, generation: 1 }).unwrap();
    assert_eq!((s.set(0).owner, s.set(0).generation, s.set(0).phase), (Some(1), 2, Phase::Stable));
    // The owner lost on the way: the set goes to the target, not to nobody.
    let mut s = direct_move();
    s.apply(&Command::Suspect { voter: 1, node: 0, epoch: 0, round: 1 }).unwrap();
    assert_eq!(s.apply(&Command::Suspect { voter: 2, node: 0, epoch: 0, round: 1 }), Ok(Applied::Evicted(0)));
    assert_eq!((s.set(0).owner, s.set(0).generation, s.set(0).phase), (Some(1), 2, Phase::Stable));
    // The owner's start failed (it stopped cleanly): the target too.
    let mut s = direct_move();
    s.apply(&Command::StartFailed { set: 0, node: 0, generation: 1, exclusion: Exclusion::Vetoed }).unwrap();
    assert_eq!((s.set(0).owner, s.set(0).generation, s.set(0).phase), (Some(1), 2, Phase::Stable));
    assert_eq!(s.set(0).excluded.get(&0), Some(&Exclusion::Vetoed));
    // A two-phase move's target is dropped when it becomes ineligible.
    let mut s = cluster();
    s.apply(&Command::Assign { set: 0, node: 0, generation: 0 }).unwrap();
    s.apply(&Command::Move { set: 0, from: 0, to: Some(1), generation: 1, direct: false }).unwrap();
    s.apply(&Command::Standby { node: 1, standby: true }).unwrap();
    s.apply(&Command::Released { set: 0, node: 0, generation: 1 }).unwrap();
    assert_eq!(s.set(0).owner, None);
    // A retired set keeps its direct target, which releases it in turn;
    // the slot that replaces it waits until it did.
    let mut s = direct_move();
    s.apply(&configure(1, vec![spec("web", &[]), spec("web", &[0, 1])])).unwrap();
    assert_eq!(s.set(0).phase, Phase::Releasing { to: Some(1), direct: true });
    s.apply(&Command::Released { set: 0, node: 0, generation: 1 }).unwrap();
    assert_eq!(s.set(0).owner, Some(1));
    let fresh = s.set(1).generation;
    assert_eq!(s.apply(&Command::Assign { set: 1, node: 2, generation: fresh }), Err(Rejected::Retiring { set: 0 }));
}

#[test]
fn a_direct_move_ends_only_by_its_targets_eviction_and_the_target_is_no_stranger() {
    let mut s = direct_move();
    s.apply(&Command::Suspect { voter: 0, node: 1, epoch: 0, round: 1 }).unwrap();
    s.apply(&Command::Suspect { voter: 2, node: 1, epoch: 0, round: 1 }).unwrap();
    assert_eq!(s.set(0).phase, Phase::Releasing { to: None, direct: false });
    s.apply(&Command::Released { set: 0, node: 0, generation: 1 }).unwrap();
    assert_eq!(s.set(0).owner, None);
    // The target seen holding the address is the move, not a duplicate;
    // anyone else still is.
    let mut s = direct_move();
    let seen = |node| crate::Stranger { mac: [2, 0, 0, 0, 0, node], node: Some(node) };
    let duplicate = |strangers| Command::Duplicate { set: 0, generation: 1, strangers };
    assert_eq!(s.apply(&duplicate(vec![seen(1)])), Err(Rejected::MoveTarget { set: 0, node: 1 }));
    assert_eq!(s.apply(&duplicate(vec![seen(1), seen(2)])), Ok(Applied::Done));
    // Nor may the target be removed from the cluster meanwhile.
    let without_b = change_nodes(1, vec![spec("web", &[0])], slots(3, &[1]));
    assert_eq!(s.apply(&without_b), Err(Rejected::MoveTarget { set: 0, node: 1 }));
    // Without a target, a direct move is an ordinary release.
    let mut s = cluster();
    s.apply(&Command::Assign { set: 0, node: 0, generation: 0 }).unwrap();
    s.apply(&Command::Move { set: 0, from: 0, to: None, generation: 1, direct: true }).unwrap();
    assert_eq!(s.set(0).phase, Phase::Releasing { to: None, direct: false });
}

//! The chaos scenarios end to end: each test runs one scenario of
//! `baton lab chaos` on a fresh lab — real agents in network namespaces,
//! the ownership record of every part of the set in every node (address,
//! processes, mounts, exports, against the agreed owner) and a client
//! probing it — and passes only if the scenario's checks hold and no part
//! was ever held by two nodes, or by a node the cluster had not given it to.
//! Needs root (network namespaces); without it every test fails and says so.
//! One lab at a time.

use std::process::Command;
use std::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::new(());

/// The `baton` binary cargo built beside the lab's (`cargo test --workspace`).
fn baton_bin() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_BIN_EXE_baton-lab")).with_file_name("baton")
}

fn scenario(name: &str, lab: &[&str]) {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "the chaos tests need root: they create network namespaces");
    let dir = std::env::temp_dir().join(format!("baton-chaos-{name}-{}", std::process::id()));
    let out = Command::new(baton_bin())
        .args(["lab", "chaos", name, "--seed", "7", "--dir"])
        .arg(&dir)
        .args(lab)
        .output()
        .expect("running baton lab chaos");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(out.status.success(), "{name} failed:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("time with two holders of the address: 0 ms"), "no ownership verdict:\n{text}");
    let parts = "processes 0 ms, mount 0 ms, export 0 ms";
    assert!(text.contains("time with two holders of a part (sampled every 20 ms"), "{text}");
    assert_eq!(text.matches(parts).count(), 2, "every part held once, by its agreed owner:\n{text}");
}

macro_rules! scenarios {
    ($($test:ident => $name:literal $([$($flag:literal),*])?),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                scenario($name, &[$($($flag),*)?]);
            }
        )*
    };
}

scenarios! {
    simul_start => "SimulStart",
    simul_stop => "SimulStop",
    stop_one_by_one => "StopOnebyOne",
    restart_one_by_one => "RestartOnebyOne",
    standby => "Standby",
    maintenance_mode => "MaintenanceMode",
    resource_recover => "ResourceRecover",
    component_fail => "ComponentFail",
    split_brain => "SplitBrain",
    near_quorum_point => "NearQuorumPoint",
    pause_owner_past_its_lease => "PauseOwner",
    flapping_links => "FlappingLinks",
    leader_killed_during_move => "LeaderKilledDuringMove",
    full_state_fs => "FullStateFs",
    corrupt_state_file => "CorruptStateFile",
    packet_flood => "PacketFlood",
    clock_step => "ClockStep",
    kill_during_start => "KillDuringStart" ["--disk"],
    pause_with_disk => "PauseWithDisk" ["--disk"],
    guard_and_agent_paused => "GuardAndAgentPaused" ["--fencing", "required"],
    handover => "Handover" ["--disk"],
    reconfigure => "Reconfigure" ["--disk"],
}

/// Every scenario `lab chaos` knows has a test here.
#[test]
fn every_scenario_has_a_test() {
    let help = Command::new(baton_bin()).args(["lab", "chaos", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let source = include_str!("chaos.rs");
    let listed: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.contains("Possible values"))
        .filter_map(|l| l.trim().strip_prefix("- "))
        .filter_map(|l| l.split(':').next())
        .collect();
    assert!(listed.len() >= 20, "scenarios in the help: {listed:?}");
    for name in listed {
        assert!(source.contains(&format!("=> \"{name}\"")), "no test runs {name}");
    }
}

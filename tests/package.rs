//! The Debian package: `packaging/deb.sh` builds it (release binary, man
//! page and completions generated from it, `cargo deb`), then its contents
//! and metadata are inspected with dpkg-deb. Needs cargo-deb (the script
//! installs it) and dpkg-deb; a separate target directory keeps the release
//! build out of the way of the test build. The binaries inside are linked
//! statically with the C library (`scripts/build-static`).

use std::path::Path;
use std::process::Command;

#[test]
fn the_deb_holds_the_binary_unit_man_page_completions_and_example() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::temp_dir().join(format!("baton-deb-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    let built = Command::new(root.join("packaging/deb.sh"))
        .arg("--output")
        .arg(&out)
        .env("CARGO_TARGET_DIR", root.join("target/deb"))
        .status()
        .expect("running packaging/deb.sh (needs sh and cargo)");
    assert!(built.success(), "packaging/deb.sh failed");
    let deb = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .expect("a .deb was written");
    let dpkg = |args: &[&str]| {
        let o = Command::new("dpkg-deb").args(args).arg(&deb).output().expect("dpkg-deb (Debian's dpkg)");
        assert!(o.status.success(), "dpkg-deb {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let contents = dpkg(&["--contents"]);
    for path in [
        "./usr/bin/baton",
        "./usr/bin/batond",
        "./usr/bin/baton-guard",
        "./usr/bin/baton-notify",
        "./lib/systemd/system/baton.service",
        "./usr/share/man/man1/baton.1.gz",
        "./usr/share/man/man1/baton-move.1.gz",
        "./usr/share/man/man1/baton-status.1.gz",
        "./usr/share/man/man5/cluster.toml.5.gz",
        "./usr/share/bash-completion/completions/baton",
        "./usr/share/zsh/vendor-completions/_baton",
        "./usr/share/fish/vendor_completions.d/baton.fish",
        "./usr/share/doc/baton/examples/cluster.toml",
        "./usr/share/doc/baton/reference.md",
        "./usr/share/doc/baton/guide.md",
    ] {
        assert!(contents.lines().any(|l| l.ends_with(path)), "{path} is missing:\n{contents}");
    }
    assert!(contents.lines().any(|l| l.starts_with("-rwxr-xr-x") && l.ends_with("./usr/bin/baton")), "{contents}");
    let fields = dpkg(&["--field"]);
    assert!(fields.contains("Package: baton"), "{fields}");
    assert!(fields.contains(&format!("Version: {}", env!("CARGO_PKG_VERSION"))), "{fields}");
    assert!(fields.lines().any(|l| l.starts_with("Depends:") && l.contains("iproute2")), "{fields}");
    // The unit inside is the one in the repository, and it asks for the watchdog.
    let unit = Command::new("dpkg-deb").arg("--fsys-tarfile").arg(&deb).output().unwrap().stdout;
    let text = String::from_utf8_lossy(&unit);
    assert!(text.contains("Type=notify") && text.contains("WatchdogSec="), "the unit is in the package");
    // The programs are static: the dynamic loader has nothing to load.
    let root = out.join("root");
    let x = Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root).status().expect("dpkg-deb -x");
    assert!(x.success(), "dpkg-deb -x failed");
    for bin in ["usr/bin/baton", "usr/bin/batond", "usr/bin/baton-guard", "usr/bin/baton-notify"] {
        let o = Command::new("ldd").arg(root.join(bin)).output().expect("ldd (Debian's libc-bin)");
        let said = String::from_utf8_lossy(&o.stdout).trim().to_string();
        assert_eq!(said, "statically linked", "{bin} is linked dynamically: {said}");
    }
    let _ = std::fs::remove_dir_all(&out);
}

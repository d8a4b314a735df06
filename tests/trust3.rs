//! Trust, round three: what elbo accepted and then silently did otherwise (the disk, messages, set-up).

mod common;
use common::*;
use elbo::train::checkpoint::CHECKPOINT;

#[test]
fn a_resume_without_room_for_a_checkpoint_is_refused_before_training_with_the_megabytes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let o = run(elbo()
        .args([
            "train", "--limit", "1000", "--hidden", "16", "--latent", "2",
        ])
        .args(["--epochs", "1", "--threads", "1", "--out"])
        .arg(&dir)
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert!(o.status.success(), "{}", stderr(&o));
    let newest = std::fs::read(dir.join(CHECKPOINT)).unwrap();
    // A small file system of its own (a mount namespace with a tmpfs), filled to leave 100 KB free: a
    // checkpoint of this model takes about 300 KB.
    let disk = tmp.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let script = r#"set -e
mount -t tmpfs -o size=8m tmpfs "$1"
cp -a "$2" "$1/run"
free=$(df --output=avail -B1 "$1" | tail -1)
head -c $((free - 100000)) /dev/zero > "$1/filler"
shift 2
exec "$@""#;
    let o = run(std::process::Command::new("unshare")
        .args(["-rm", "sh", "-c", script, "sh"])
        .arg(&disk)
        .arg(&dir)
        .arg(env!("CARGO_BIN_EXE_elbo"))
        .args(["train", "--epochs", "3", "--resume"])
        .arg(disk.join("run"))
        .arg("--data-dir")
        .arg(mnist_dir()));
    let err = stderr(&o);
    let mb = |after: &str| -> f64 {
        let rest =
            &err[err.find(after).unwrap_or_else(|| panic!("{after}: {err}")) + after.len()..];
        rest.split(' ').next().unwrap().parse().unwrap()
    };
    let (needed, free, more) = (
        mb("one more checkpoint needs "),
        mb("of free disk and there are "),
        mb("free at least "),
    );
    let size = newest.len() as f64 / 1e6;
    assert!(needed >= size && needed < size + 1.2, "{err}");
    assert!((0.0..=0.1).contains(&free), "{err}");
    assert!((more - (needed - free)).abs() < 0.11, "{err}");
    assert_user_error(
        &o,
        "the checkpoint of epoch 1 is kept: then continue with 'elbo train --resume",
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains("epoch"), "no epoch is trained first: {out}");
    assert_eq!(std::fs::read(dir.join(CHECKPOINT)).unwrap(), newest);
}

#[test]
fn control_characters_in_names_never_reach_the_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let class = data.join("a\x1b[2Jb");
    std::fs::create_dir_all(&class).unwrap();
    let img = image::RgbImage::from_pixel(8, 8, image::Rgb([200, 10, 10]));
    for i in 0..6 {
        img.save(class.join(format!("{i}.png"))).unwrap();
    }
    std::fs::write(class.join("broken\x07.png"), b"not a png").unwrap();
    let o = run(elbo()
        .env("ELBO_CACHE_DIR", "off")
        .args(["train", "--data"])
        .arg(&data)
        .args(["--epochs", "1", "--hidden", "8", "--latent", "2", "--out"])
        .arg(tmp.path().join("run")));
    assert_user_error(&o, "a\\u{1b}[2Jb/broken\\u{7}.png");
    assert!(
        !o.stderr.iter().any(|&b| b == 0x1b || b == 0x07),
        "{}",
        stderr(&o)
    );
    // A notice (here the images left out by --skip-bad) is escaped too.
    let o = run(elbo()
        .env("ELBO_CACHE_DIR", "off")
        .args(["train", "--skip-bad", "--data"])
        .arg(&data)
        .args(["--epochs", "1", "--hidden", "8", "--latent", "2", "--out"])
        .arg(tmp.path().join("run")));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("broken\\u{7}.png"), "{}", stderr(&o));
    assert!(
        !o.stderr.iter().any(|&b| b == 0x1b || b == 0x07),
        "{}",
        stderr(&o)
    );
}

/// The README's set-up section, up to the next section.
fn setup_section() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("## Set up on a fresh machine")
        .expect("a set-up section");
    let end = readme[start + 3..]
        .find("\n## ")
        .map_or(readme.len(), |e| start + 3 + e);
    readme[start..end].to_string()
}

#[test]
fn the_readme_test_command_is_what_ci_runs_without_link_time_optimisation() {
    let setup = setup_section();
    let command = setup
        .lines()
        .find(|l| l.starts_with("cargo test"))
        .expect("a test command in the set-up section")
        .trim()
        .to_string();
    let ci = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/run")).unwrap();
    assert!(
        ci.lines().any(|l| l.trim() == command),
        "{command:?} is what .ci/run runs"
    );
    assert!(
        !ci.contains("CARGO_PROFILE_"),
        "no settings of .ci/run's own that the README lacks"
    );
    let profile = command
        .split_whitespace()
        .skip_while(|w| *w != "--profile")
        .nth(1)
        .expect("the command names its profile");
    let manifest: toml::Table =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
            .unwrap()
            .parse()
            .unwrap();
    let p = &manifest["profile"][profile];
    assert_eq!(p["inherits"].as_str(), Some("release"));
    assert_eq!(p["lto"].as_bool(), Some(false), "{p:?}");
    // How long it takes, and how to run without the internet, are said where a new user starts.
    assert!(setup.contains("minutes"), "{setup}");
    assert!(!setup.contains("TEST_MINUTES"), "the time is filled in");
    for needle in ["--data-dir", "ELBO_DATA_DIR", "Offline"] {
        assert!(setup.contains(needle), "{needle}: {setup}");
    }
}

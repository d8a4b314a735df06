//! The downloader against a loopback HTTP server: real files, a corrupted one, a missing one.

mod common;
use common::*;
use elbo::data::download::{RemoteFile, fetch_all};
use elbo::data::named::FILE_NAMES;
use elbo::data::{DatasetName, load_dataset};

#[test]
fn downloads_verify_published_checksums_through_the_cli() {
    let base = serve(mnist_files());
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let o = run(elbo()
        .env("ELBO_MIRROR", &base)
        .args([
            "train", "--epochs", "1", "--limit", "256", "--hidden", "32", "--out",
        ])
        .arg(tmp.path().join("run"))
        .arg("--data-dir")
        .arg(&data));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("downloading {base}train-images-idx3-ubyte.gz")));
    for name in FILE_NAMES {
        assert!(data.join(name).is_file(), "{name} downloaded");
    }
    let (train, test) = load_dataset(DatasetName::Mnist, &data).unwrap();
    assert_eq!(
        (train.len(), test.len(), train.shape),
        (60000, 10000, elbo::data::ItemShape::grey(28, 28))
    );
}

#[test]
fn corrupted_download_is_removed_and_reported_with_its_url() {
    let mut files = mnist_files();
    files.get_mut("train-labels-idx1-ubyte.gz").unwrap()[100] ^= 0xff;
    let base = serve(files);
    let tmp = tempfile::tempdir().unwrap();
    let o = run(elbo()
        .env("ELBO_MIRROR", &base)
        .args(["train", "--epochs", "1", "--out"])
        .arg(tmp.path().join("run"))
        .arg("--data-dir")
        .arg(tmp.path().join("data")));
    assert_user_error(&o, &format!("{base}train-labels-idx1-ubyte.gz"));
    assert!(stderr(&o).contains("checksum mismatch"), "{}", stderr(&o));
    let left: Vec<_> = std::fs::read_dir(tmp.path().join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        !left
            .iter()
            .any(|n| n.to_string_lossy().contains("train-labels")),
        "the bad download must not stay: {left:?}"
    );
}

#[test]
fn falls_back_to_the_next_mirror() {
    let good = serve(mnist_files());
    let empty = serve(Default::default());
    let tmp = tempfile::tempdir().unwrap();
    let file = RemoteFile {
        name: FILE_NAMES[3].into(),
        md5: DatasetName::Mnist.remote_files()[3].md5.clone(),
    };
    fetch_all(
        std::slice::from_ref(&file),
        tmp.path(),
        &[empty.clone(), good],
    )
    .unwrap();
    assert!(tmp.path().join(FILE_NAMES[3]).is_file());
    let err = fetch_all(&[file], &tmp.path().join("x"), std::slice::from_ref(&empty))
        .unwrap_err()
        .to_string();
    assert!(err.contains("404") && err.contains(&empty), "{err}");
}

#[test]
fn refuses_plain_http_to_other_hosts() {
    let tmp = tempfile::tempdir().unwrap();
    let file = RemoteFile {
        name: "a.gz".into(),
        md5: "0".repeat(32),
    };
    let err = fetch_all(&[file], tmp.path(), &["http://example.org/".into()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("only https://"), "{err}");
}

#[test]
fn local_files_of_another_dataset_are_named_not_used() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("looks-like-fashion");
    common::copy_mnist(&data);
    for dataset in ["fashion-mnist", "kmnist"] {
        let out = tmp.path().join("run");
        let o = run(elbo()
            .args(["train", "--dataset", dataset, "--epochs", "1", "--data-dir"])
            .arg(&data)
            .arg("--out")
            .arg(&out));
        assert_user_error(
            &o,
            &format!("this is not {dataset}'s train-images-idx3-ubyte.gz"),
        );
        assert!(
            stderr(&o).contains("it is mnist's train-images-idx3-ubyte.gz"),
            "{}",
            stderr(&o)
        );
        assert!(!out.exists());
    }
    // A damaged file matches nothing known.
    let mut bytes = std::fs::read(data.join(FILE_NAMES[1])).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(data.join(FILE_NAMES[1]), bytes).unwrap();
    let o = run(elbo()
        .args(["train", "--epochs", "1", "--data-dir"])
        .arg(&data)
        .arg("--out")
        .arg(tmp.path().join("run")));
    assert_user_error(&o, "matches no file elbo knows");
}

#[test]
fn an_offline_failure_names_every_missing_file_and_the_ways_out() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("fresh");
    let o = run(elbo()
        .env("ELBO_MIRROR", "http://127.0.0.1:9/")
        .args(["train", "--epochs", "1", "--data-dir"])
        .arg(&data)
        .arg("--out")
        .arg(tmp.path().join("run")));
    for needle in FILE_NAMES
        .iter()
        .copied()
        .chain(["--data-dir", "ELBO_DATA_DIR", "ELBO_MIRROR"])
    {
        assert!(stderr(&o).contains(needle), "{needle}: {}", stderr(&o));
    }
    assert_user_error(&o, "download failed");
    assert!(!data.exists(), "no empty folder is left behind");
    // Something that is not a regular file where a dataset file belongs is named, never downloaded over.
    std::fs::create_dir_all(data.join(FILE_NAMES[0])).unwrap();
    let o = run(elbo()
        .env("ELBO_MIRROR", "http://127.0.0.1:9/")
        .args(["train", "--epochs", "1", "--data-dir"])
        .arg(&data));
    assert_user_error(&o, "not a regular file");
    assert!(data.join(FILE_NAMES[0]).is_dir());
}

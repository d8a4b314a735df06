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

/// What a packager does to a dataset: the same content, compressed again (Debian's `dataset-fashion-mnist`).
fn recompress(from: &std::path::Path, to: &std::path::Path, edit: impl Fn(&mut Vec<u8>)) {
    use std::io::{Read, Write};
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(from).unwrap())
        .read_to_end(&mut raw)
        .unwrap();
    edit(&mut raw);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(1));
    gz.write_all(&raw).unwrap();
    let bytes = gz.finish().unwrap();
    assert_ne!(bytes, std::fs::read(from).unwrap(), "another wrapper");
    std::fs::write(to, bytes).unwrap();
}

#[test]
fn recompressed_files_are_checked_by_their_content() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("repacked");
    std::fs::create_dir_all(&data).unwrap();
    for name in FILE_NAMES {
        recompress(&mnist_dir().join(name), &data.join(name), |_| {});
    }
    let train = |dataset: &str, data: &std::path::Path| {
        run(elbo()
            .env("ELBO_CACHE_DIR", tmp.path().join("cache"))
            .args([
                "train",
                "--dataset",
                dataset,
                "--epochs",
                "1",
                "--limit",
                "256",
            ])
            .args(["--hidden", "16", "--latent", "2", "--force", "--data-dir"])
            .arg(data)
            .arg("--out")
            .arg(tmp.path().join("run")))
    };
    let o = train("mnist", &data);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("recompressed (its gzip wrapper is not the published one, its content is mnist's published train-images-idx3-ubyte)"),
        "{}",
        stderr(&o)
    );
    // Another dataset's content in another wrapper is named as that.
    let o = train("fashion-mnist", &data);
    assert_user_error(&o, "it is mnist's train-images-idx3-ubyte, recompressed");
    // Damaged content in a sound wrapper is still refused.
    recompress(
        &mnist_dir().join(FILE_NAMES[1]),
        &data.join(FILE_NAMES[1]),
        |raw| raw[100] ^= 1,
    );
    assert_user_error(
        &train("mnist", &data),
        "matches no file elbo knows (damaged",
    );
    let plain = tmp.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    for name in FILE_NAMES {
        use std::io::Read;
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(mnist_dir().join(name)).unwrap())
            .read_to_end(&mut raw)
            .unwrap();
        std::fs::write(plain.join(name.trim_end_matches(".gz")), raw).unwrap();
    }
    // Decompressed files are the user's to vouch for (they may be a dataset's own under its names).
    assert!(train("mnist", &plain).status.success());
}

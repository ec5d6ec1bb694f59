//! A policy update delivered the way kubelet updates a ConfigMap volume:
//! each version in its own timestamped folder, `..data` a symlink to the
//! current one, the visible files symlinks through `..data`; an update
//! writes a new folder, renames a fresh `..data_tmp` symlink over `..data`
//! (atomic), adds links for new keys and removes the old folder. The
//! gateway's folder watch sees each swap and reloads, without a restart.

use super::*;

use std::os::unix::fs::symlink;

/// One ConfigMap volume in `dir`, in kubelet's layout.
struct Volume {
    dir: PathBuf,
    version: u32,
    current: Option<PathBuf>,
}

impl Volume {
    /// Publishes `files` as the next version, as kubelet's atomic writer does.
    fn publish(&mut self, files: &[(&str, &str)]) {
        self.version += 1;
        let ts = self.dir.join(format!(
            "..2026_01_01_00_00_{:02}.00000000{}",
            self.version, self.version
        ));
        std::fs::create_dir(&ts).unwrap();
        for (name, text) in files {
            std::fs::write(ts.join(name), text).unwrap();
        }
        let tmp = self.dir.join("..data_tmp");
        symlink(ts.file_name().unwrap(), &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
        for (name, _) in files {
            let link = self.dir.join(name);
            if std::fs::symlink_metadata(&link).is_err() {
                symlink(Path::new("..data").join(name), link).unwrap();
            }
        }
        if let Some(old) = self.current.replace(ts) {
            std::fs::remove_dir_all(old).unwrap();
        }
    }
}

fn routes(names: &[&str]) -> String {
    let mut y = String::from("routes:\n");
    for n in names {
        y.push_str(&format!("  {n}:\n    targets: [{{provider: m}}]\n"));
    }
    y
}

async fn generation(gw: &TestGateway) -> u64 {
    let v: Value = gw.get("/readyz").await.json().await.unwrap();
    v["policy_generation"].as_u64().unwrap()
}

async fn model_ids(gw: &TestGateway) -> Vec<String> {
    let v: Value = gw.get("/v1/models").await.json().await.unwrap();
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_configmap_symlink_swap_is_seen_by_the_folder_watch() {
    let server = "server:\n  reload_interval: 50ms\nproviders:\n  m:\n    kind: mock\n";
    let first = format!("{server}{}", routes(&["a"]));
    let gw = gateway_with(&first, true).await;
    // Turn the gateway's folder into a ConfigMap volume with the same content.
    let mut vol = Volume {
        dir: gw.dir.path().to_path_buf(),
        version: 0,
        current: None,
    };
    std::fs::remove_file(vol.dir.join("policy.yaml")).unwrap();
    vol.publish(&[("policy.yaml", &first)]);
    assert_eq!(model_ids(&gw).await, ["a"]);

    // An edited key: a new version behind the same visible symlink.
    vol.publish(&[("policy.yaml", &format!("{server}{}", routes(&["a", "b"])))]);
    eventually(async || model_ids(&gw).await == ["a", "b"]).await;
    let after_edit = generation(&gw).await;

    // A new key: a second file appears with the swap.
    vol.publish(&[
        ("policy.yaml", &format!("{server}{}", routes(&["a", "b"]))),
        ("more.yaml", "cache:\n  default_ttl: 1m\n"),
    ]);
    eventually(async || generation(&gw).await == after_edit + 1).await;
    assert_eq!(gw.chat("b", "hi").await.status(), 200);

    // The timestamped folders and ..data are not policy files themselves,
    // and a broken version keeps the running policy.
    vol.publish(&[("policy.yaml", "routes: [not valid")]);
    eventually(async || {
        gw.metric(r#"switchyard_policy_reloads_total{result="failure"}"#)
            .await
            == 1.0
    })
    .await;
    assert_eq!(model_ids(&gw).await, ["a", "b"]);
    gw.stop().await;
}

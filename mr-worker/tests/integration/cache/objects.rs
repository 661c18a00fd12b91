//! A cache under an object store prefix, over object inputs.

use super::*;

/// A cache under an object store prefix, with object inputs, against a
/// real S3-compatible server on loopback (SKIP without moto): reuse,
/// an edited object, a damaged entry and eviction behave as in a
/// directory, and every answer equals a fresh run's.
#[test]
fn a_cache_in_an_object_store_over_object_inputs_reuses_exactly() {
    let t = TestDir::new();
    let Some(moto) = crate::objects::Moto::start(&t) else {
        return;
    };
    moto.bucket("mr-in");
    moto.bucket("mr-cache");
    let texts: Vec<(String, Vec<u8>)> = data_files()
        .iter()
        .enumerate()
        .map(|(i, f)| (format!("{i}.txt"), std::fs::read(f).unwrap()))
        .collect();
    // Through boto3 (a whole book is more than the bare PUT helper's
    // requests get through).
    let upload = |key: &str, bytes: &[u8]| {
        let f = t.write(&format!("up/{}", key.replace('/', "_")), bytes);
        moto.boto(&format!(
            "s3.put_object(Bucket='mr-in', Key='{key}', Body=open('{f}', 'rb').read())"
        ));
    };
    for (name, bytes) in &texts {
        upload(&format!("texts/{name}"), bytes);
    }
    let inputs = vec!["s3://mr-in/texts/*".to_string()];
    let cache = Path::new("s3://mr-cache/jobs/c");
    let args = ["--app", "wc", "--reduces", "4"];
    let env = |c: &mut Command| moto.env(c);
    let (first, reduces) = run_in(&t, "first", Some(cache), &args, &inputs, &env);
    assert!(
        first >= 8 && reduces == 4,
        "{first} maps, {reduces} reduces"
    );
    let kept = moto.keys("mr-cache", "jobs/c/mr-cache-v2/map/");
    assert_eq!(
        kept.len(),
        2 * first,
        "data and meta of every map: {kept:?}"
    );
    run_in(&t, "fresh", None, &args, &inputs, &env);
    assert_eq!(outputs(&t, "first", 4), outputs(&t, "fresh", 4));
    // Nothing changed: nothing runs.
    let (maps, reduces) = run_in(&t, "again", Some(cache), &args, &inputs, &env);
    assert_eq!((maps, reduces), (0, 0));
    assert_eq!(outputs(&t, "again", 4), outputs(&t, "fresh", 4));
    // One object rewritten with a line inserted in its middle: the splits
    // around the edit run again, and the answer is a fresh run's.
    let (name, bytes) = &texts[2];
    let mut edited = bytes.clone();
    let mid = edited.len() / 2;
    let at = mid + edited[mid..].iter().position(|&b| b == b'\n').unwrap() + 1;
    edited.splice(at..at, b"zyzzyva quux\n".iter().copied());
    upload(&format!("texts/{name}"), &edited);
    let (maps, _) = run_in(&t, "edited", Some(cache), &args, &inputs, &env);
    assert!((1..=2).contains(&maps), "{maps} of {first} maps ran again");
    run_in(&t, "fresh-edited", None, &args, &inputs, &env);
    assert_eq!(outputs(&t, "edited", 4), outputs(&t, "fresh-edited", 4));
    // Every map entry's data and one reduce entry's damaged in the store
    // (a byte changed): misses, recomputed; no attempt fails (run_in
    // checks) and the answer holds. (With every output cached, no map
    // output is even looked at: the reduce's damage makes the maps needed.)
    // One boto3 call: every map entry's data, and the newest reduce's (one
    // the edited run kept, so one this job looks up).
    moto.boto(
        "def damage(key):\n\
         \x20 b = bytearray(s3.get_object(Bucket='mr-cache', Key=key)['Body'].read())\n\
         \x20 b[-1] ^= 1\n\
         \x20 s3.put_object(Bucket='mr-cache', Key=key, Body=bytes(b))\n\
         def data(kind):\n\
         \x20 r = s3.list_objects_v2(Bucket='mr-cache', Prefix='jobs/c/mr-cache-v2/' + kind + '/')\n\
         \x20 return sorted(o['Key'] for o in r.get('Contents', []) if o['Key'].endswith('.data'))\n\
         for k in data('map'):\n\
         \x20 damage(k)\n\
         r = s3.list_objects_v2(Bucket='mr-cache', Prefix='jobs/c/mr-cache-v2/reduce/')\n\
         newest = max((o for o in r['Contents'] if o['Key'].endswith('.data')), key=lambda o: o['LastModified'])\n\
         damage(newest['Key'])\n",
    );
    let (maps, reduces) = run_in(&t, "damaged", Some(cache), &args, &inputs, &env);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.path().join("damaged/mr-report.json")).unwrap())
            .unwrap();
    assert_eq!(report["cache"]["maps_reused"], 0, "{report}");
    assert!(
        maps >= first - 1 && reduces == 1,
        "{maps} maps, {reduces} reduces ran"
    );
    assert_eq!(outputs(&t, "damaged", 4), outputs(&t, "fresh-edited", 4));
    // --cache-max 1: after the job, everything is evicted.
    let tight = ["--app", "wc", "--reduces", "4", "--cache-max", "1"];
    run_in(&t, "evicting", Some(cache), &tight, &inputs, &env);
    let left: Vec<String> = moto
        .keys("mr-cache", "jobs/c/mr-cache-v2/")
        .into_iter()
        .filter(|k| !k.contains("/tmp/"))
        .collect();
    assert!(left.is_empty(), "evicted to 1 byte, yet {left:?}");
    // mrsequential with the same cache and inputs: its answer is the sum.
    let dir = t.path().join("seq");
    std::fs::create_dir_all(&dir).unwrap();
    let mut seq = Command::new(bin("mrsequential"));
    moto.env(&mut seq);
    let o = seq
        .arg("--output-dir")
        .arg(&dir)
        .arg("--cache")
        .arg(cache)
        .args(["--split-size", "64KiB", "wc"])
        .args(&inputs)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Empty outputs (one word, seven partitions) are kept and taken back
    // as empty objects.
    let tiny = vec![t.write("tiny.txt", b"solitary\n")];
    let small = Path::new("s3://mr-cache/jobs/tiny");
    let seven = ["--app", "wc", "--reduces", "7"];
    run_in(&t, "tiny", Some(small), &seven, &tiny, &env);
    let (maps, reduces) = run_in(&t, "tiny-again", Some(small), &seven, &tiny, &env);
    assert_eq!(
        (maps, reduces),
        (0, 0),
        "all seven outputs, six of them empty, reused"
    );
    let again = outputs(&t, "tiny-again", 7);
    assert_eq!(again, outputs(&t, "tiny", 7));
    assert_eq!(again.iter().filter(|o| o.is_empty()).count(), 6);
    let seq_out = std::fs::read(dir.join("mr-out-0")).unwrap();
    assert_eq!(
        sorted_lines(&[seq_out]),
        sorted_lines(&outputs(&t, "fresh-edited", 4))
    );
}

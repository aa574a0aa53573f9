"""A real Nacos SDK (nacos-sdk-python 0.1.14, HTTP Open API v1) against lgo-dash's Nacos endpoint.

A manual check, not part of `cargo test` (the SDK's watcher processes outlive it and its teardown
took the test runner's processes with it here):
    python3 -m venv ~/nacos-venv && ~/nacos-venv/bin/pip install nacos-sdk-python==0.1.14
    lgo-dash serve --ports auto &        # note its `nacos URL`
    ~/nacos-venv/bin/python -u devcluster/tests/nacos_sdk.py URL
(run it from a scratch directory if you mind the `nacos-data/` snapshot folder the SDK writes).
Prints one line per step and `NACOS SDK OK` at the end, or exits 1 naming the step that failed.
"""
import sys
import time

import nacos


def check(step, ok, detail=""):
    print(f"{step}: {'ok' if ok else 'FAILED'} {detail}", flush=True)
    if not ok:
        sys.exit(1)


server = sys.argv[1].replace("http://", "")
c = nacos.NacosClient(server, namespace="")

check("register", c.add_naming_instance("py-svc", "127.0.0.1", 9100, cluster_name="DEFAULT",
                                        weight=1.5, metadata={"lang": "python"}) is True)
listed = c.list_naming_instance("py-svc", healthy_only=True)
hosts = listed.get("hosts", [])
check("list", len(hosts) == 1 and hosts[0]["port"] == 9100 and hosts[0]["weight"] == 1.5
      and hosts[0]["metadata"] == {"lang": "python"} and hosts[0]["healthy"], str(listed))
got = c.get_naming_instance("py-svc", "127.0.0.1", 9100, "DEFAULT")
check("instance", got.get("instanceId") == "127.0.0.1#9100#DEFAULT#DEFAULT_GROUP@@py-svc", str(got))
beat = c.send_heartbeat("py-svc", "127.0.0.1", 9100, cluster_name="DEFAULT", weight=1.5,
                        metadata={"lang": "python"})
check("beat", beat.get("code") == 10200 and beat.get("clientBeatInterval", 0) > 0, str(beat))

check("publish", c.publish_config("py.yaml", "DEFAULT_GROUP", "a: 1") is True)
check("get", c.get_config("py.yaml", "DEFAULT_GROUP") == "a: 1")
woken = []
c.add_config_watcher("py.yaml", "DEFAULT_GROUP", lambda args: woken.append((time.time(), args["content"])))
time.sleep(1.5)
published = time.time()
c.publish_config("py.yaml", "DEFAULT_GROUP", "a: 2")
for _ in range(50):
    if woken:
        break
    time.sleep(0.1)
check("watcher", bool(woken) and woken[0][1] == "a: 2",
      f"woken after {round(woken[0][0] - published, 3) if woken else None}s")

live = c.get_config("lgo.properties", "LGO") or ""
check("live config", "traffic.rps=" in live, live[:80])
try:
    c.publish_config("lgo.properties", "LGO", "traffic.rps=40000")
    check("refused publish", False, "accepted")
except nacos.exception.NacosException as e:
    check("refused publish", "400" in str(e), str(e))

check("deregister", c.remove_naming_instance("py-svc", "127.0.0.1", 9100, cluster_name="DEFAULT") is True)
check("gone", c.list_naming_instance("py-svc").get("hosts") == [])
print("NACOS SDK OK", flush=True)

"""ORAS (the oras package from PyPI, OCI Registry As Storage) against registryd.

Pushes an artifact (one file layer; its artifact type is the config's media type, as
ORAS artifacts name it), pulls it back byte for byte, pushes a second artifact whose
subject is the first, and finds it through the referrers API. Run by
Tests/EndToEndTests/ORASClientTests.swift:

    python oras_roundtrip.py HOST:PORT basic|token USER PASSWORD WORKDIR

Prints one JSON object with what it saw; exits non-zero on any failure.
"""
import hashlib
import json
import os
import sys

import oras.client
import oras.oci

ARTIFACT_TYPE = "application/vnd.registryd.test.artifact.v1+json"
SIGNATURE_TYPE = "application/vnd.registryd.test.signature.v1+json"


def main():
    host, backend, user, password, workdir = sys.argv[1:6]
    os.chdir(workdir)  # ORAS only pushes files below the working directory
    client = oras.client.OrasClient(hostname=host, insecure=True, auth_backend=backend)
    client.login(username=user, password=password, hostname=host, config_path=os.path.join(workdir, "auth.json"))
    repository = f"{host}/{user}/artifact"

    payload = os.urandom(100_000)
    with open("payload.bin", "wb") as file:
        file.write(payload)
    with open("config.json", "w") as file:
        file.write("{}")
    pushed = client.push(target=f"{repository}:v1", files=["payload.bin"],
                         manifest_config=f"config.json:{ARTIFACT_TYPE}")
    pushed.raise_for_status()

    pulled = client.pull(target=f"{repository}:v1", outdir=os.path.join(workdir, "pulled"))
    with open(pulled[0], "rb") as file:
        roundtrip = file.read() == payload

    # The subject is the manifest exactly as the registry serves it.
    served = client.do_request(f"http://{host}/v2/{user}/artifact/manifests/v1", "GET",
                               headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    served.raise_for_status()
    subject = oras.oci.Subject(mediaType="application/vnd.oci.image.manifest.v1+json",
                               digest="sha256:" + hashlib.sha256(served.content).hexdigest(), size=len(served.content))
    with open("signature.txt", "w") as file:
        file.write("signed by the test")
    with open("signature-config.json", "w") as file:
        file.write("{}")
    referrer = client.push(target=f"{repository}:signature", files=["signature.txt"],
                           manifest_config=f"signature-config.json:{SIGNATURE_TYPE}", subject=subject)
    referrer.raise_for_status()

    listed = client.do_request(f"http://{host}/v2/{user}/artifact/referrers/{subject.digest}", "GET")
    listed.raise_for_status()
    filtered = client.do_request(f"http://{host}/v2/{user}/artifact/referrers/{subject.digest}?artifactType={SIGNATURE_TYPE}", "GET")
    filtered.raise_for_status()
    print(json.dumps({
        "roundtrip": roundtrip,
        "subject": subject.digest,
        "referrer": referrer.headers.get("Docker-Content-Digest"),
        "referrers": listed.json(),
        "filtered": filtered.json(),
        "subject_header": referrer.headers.get("OCI-Subject"),
    }))


if __name__ == "__main__":
    main()

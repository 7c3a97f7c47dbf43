#!/usr/bin/env bash
# Regenerates the TPM test vectors in this directory with a real software TPM (README.md).
#
# Needs Debian's swtpm, swtpm-tools and tpm2-tools, and cargo. Runs in a private network
# namespace (root, `unshare --net`) so swtpm's fixed ports clash with nothing. Extra cargo
# flags (e.g. --config for a shared target dir) can be passed in TPM_VECTORS_CARGO_FLAGS.
set -euo pipefail
out="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$out/../../../../.." && pwd)"

if [ -z "${TPM_VECTORS_IN_NETNS:-}" ]; then
  # Build the capture test first: cargo needs no network inside the namespace then.
  # shellcheck disable=SC2086
  (cd "$repo" && cargo test -p iotemu --lib ${TPM_VECTORS_CARGO_FLAGS:-} --no-run)
  exec unshare --net env TPM_VECTORS_IN_NETNS=1 bash "$0" "$@"
fi
ip link set lo up

work="$(mktemp -d)"
mkdir "$work/state"
swtpm socket --tpm2 --server type=tcp,port=2321 --ctrl type=tcp,port=2322 \
  --tpmstate dir="$work/state" --flags not-need-init,startup-clear &
swtpm_pid=$!
trap 'kill "$swtpm_pid"; rm -rf "$work"' EXIT
export TPM2TOOLS_TCTI=swtpm:host=127.0.0.1,port=2321
for _ in $(seq 100); do tpm2_getrandom 4 >/dev/null 2>&1 && break; sleep 0.1; done
cd "$work"

# The EK and SRK the Node and C SDKs use: the TCG default RSA-2048 EK template (AES-128-CFB,
# the standard EK policy) at 0x81010001, an RSA-2048/AES-128-CFB storage primary at 0x81000001.
tpm2_createek -Q -c 0x81010001 -G rsa -u ek.pub
tpm2_createprimary -Q -C o -g sha256 -G rsa2048:aes128cfb \
  -a 'restricted|decrypt|fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda' -c srk.ctx
tpm2_evictcontrol -Q -C o -c srk.ctx 0x81000001
tpm2_readpublic -Q -c 0x81000001 -o srk.pub
# No resource manager here: every transient object and session is flushed by hand.
flush() { tpm2_flushcontext -t; tpm2_flushcontext -s; tpm2_flushcontext -l; }
flush

# The server side, by the code under test: each case's blob, split into tpm2-tools files.
# shellcheck disable=SC2086
(cd "$repo" && TPM_VECTORS_DIR="$work" cargo test --offline -p iotemu --lib \
  ${TPM_VECTORS_CARGO_FLAGS:-} auth::tpm::tests::capture -- --ignored --exact)

# The device side, as the SDKs do it: ActivateCredential (EK policy session: PolicySecret
# on the endorsement hierarchy) yields the inner key; Import with it under the SRK; Load;
# persist at 0x81000100; HMAC-SHA256 the SAS string-to-sign with the imported key.
for case in challenge hub-key; do
  flush
  tpm2_startauthsession -Q --policy-session -S session.ctx
  tpm2_policysecret -Q -S session.ctx -c e
  tpm2_activatecredential -Q -c 0x81000001 -C 0x81010001 -i "$case.credential" \
    -o "$case.inner" -P session:session.ctx
  flush
  tpm2_import -Q -C 0x81000001 -u "$case.idkey.pub" -i "$case.dup" -s "$case.seed" \
    -k "$case.inner" -r "$case.idkey.priv"
  tpm2_load -Q -C 0x81000001 -u "$case.idkey.pub" -r "$case.idkey.priv" -c idkey.ctx
  tpm2_evictcontrol -Q -C o -c 0x81000100 2>/dev/null || true
  tpm2_evictcontrol -Q -C o -c idkey.ctx 0x81000100
  flush
  tpm2_hmac -c 0x81000100 -g sha256 -o "$case.sig" "$case.tosign"
  # Cross-checks outside the code under test: the inner key is 16 bytes, and the key the
  # server chose gives the HMAC the TPM made.
  [ "$(wc -c < "$case.inner")" = 16 ]
  expected="$(openssl dgst -sha256 -mac HMAC -macopt "hexkey:$(xxd -p -c 256 "$case.key")" \
    -binary "$case.tosign" | xxd -p -c 256)"
  [ "$expected" = "$(xxd -p -c 256 "$case.sig")" ] || { echo "$case: HMAC mismatch" >&2; exit 1; }
  cp "$case.blob" "$case.sig" "$out/"
done
cp ek.pub srk.pub "$out/"
echo "vectors written to $out"

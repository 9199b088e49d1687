#!/usr/bin/env bash
# Fetches DFDC training parts and unpacks each into DATA_ROOT/dfdc_train_part_N/ (with its metadata.json).
# Runs on the host (needs the Kaggle client and unzip), not in the Docker image.
set -euo pipefail

COMPETITION="${DFDC_COMPETITION:-deepfake-detection-challenge}"
# printf format of the zip names on the competition's Data page (chunks 00..49 unpack to dfdc_train_part_0..49).
ZIP_NAME_FORMAT="${DFDC_ZIP_NAME_FORMAT:-dfdc_train_part_%02d.zip}"
MIN_FREE_GB="${DFDC_MIN_FREE_GB:-25}"  # one ~10 GB zip plus its unpacked copy, with some room
RULES_URL="https://www.kaggle.com/competitions/$COMPETITION/rules"
DATA_URL="https://www.kaggle.com/competitions/$COMPETITION/data"
LAST_PART=49

usage() {
    cat >&2 <<EOF
usage: ./download_dfdc.sh DATA_ROOT [PARTS...] [--keep-zip] [--zips-dir DIR]
  PARTS       part numbers 0-$LAST_PART: "all" (default), "3", "0-2", "0 1 5", "0,1,5"
  --keep-zip  keep each zip after a successful unpack (default: delete it)
  --zips-dir  take the zips from DIR (downloaded in a browser) instead of the kaggle client
Run it on the host, not in the Docker image. Needs unzip and the official Kaggle client (pip install kaggle),
an API token in ~/.kaggle/kaggle.json (or KAGGLE_USERNAME/KAGGLE_KEY), and the competition rules accepted at
$RULES_URL.
Parts already unpacked (DATA_ROOT/dfdc_train_part_N/metadata.json present) are skipped, so a rerun resumes.
environment: DFDC_ZIP_NAME_FORMAT (default $ZIP_NAME_FORMAT), DFDC_MIN_FREE_GB (default $MIN_FREE_GB),
             DFDC_COMPETITION (default $COMPETITION)
EOF
}

fail_usage() {
    echo "$1" >&2
    usage
    exit 2
}

# Prints the selected part numbers, one per line, sorted and without repeats.
parse_parts() {
    local token first last tokens
    IFS=', ' read -r -a tokens <<< "$*"
    for token in "${tokens[@]}"; do
        case "$token" in
            all) first=0; last=$LAST_PART ;;
            *-*) first="${token%-*}"; last="${token#*-}" ;;
            *) first="$token"; last="$token" ;;
        esac
        if ! [[ "$first" =~ ^[0-9]+$ && "$last" =~ ^[0-9]+$ ]] || ((10#$first > 10#$last || 10#$last > LAST_PART)); then
            fail_usage "bad part selection '$token': use numbers 0-$LAST_PART, ranges like 0-2, or all"
        fi
        seq "$((10#$first))" "$((10#$last))"
    done | sort -n -u
}

zip_name_of() {
    # shellcheck disable=SC2059  # the format is the point
    printf "$ZIP_NAME_FORMAT" "$1"
}

has_kaggle_credentials() {
    local config_dir="${KAGGLE_CONFIG_DIR:-$HOME/.kaggle}"
    [ -n "${KAGGLE_USERNAME:-}" ] && [ -n "${KAGGLE_KEY:-}" ] && return 0
    [ -n "${KAGGLE_API_TOKEN:-}" ] && return 0
    [ -f "$config_dir/kaggle.json" ] || [ -f "$config_dir/access_token" ] \
        || [ -f "${XDG_CONFIG_HOME:-$HOME/.config}/kaggle/kaggle.json" ]
}

TOKEN_HELP="Create an API token on https://www.kaggle.com/settings (API > Create New Token), save it as
~/.kaggle/kaggle.json (chmod 600), or export KAGGLE_USERNAME and KAGGLE_KEY."

check_free_space() {
    local free_kb
    free_kb="$(df -Pk "$DATA_ROOT" | awk 'NR == 2 {print $4}')"
    if ((free_kb < MIN_FREE_GB * 1024 * 1024)); then
        echo "Not enough free space in $DATA_ROOT for part $1: $((free_kb / 1024 / 1024)) GB free," \
             "$MIN_FREE_GB GB needed (set DFDC_MIN_FREE_GB to change)." >&2
        exit 1
    fi
}

# Explains a failed kaggle call from its output, then stops: these failures concern every part.
explain_kaggle_failure() {
    local log="$1" zip_name="$2" status="$3"
    if grep -qiE "403|forbidden|must accept|rules" "$log"; then
        echo "Kaggle refused the download: accept the competition rules while logged in at" >&2
        echo "  $RULES_URL" >&2
        echo "then rerun this command (parts already unpacked are skipped)." >&2
    elif grep -qiE "401|unauthori[sz]ed|kaggle\.json|credential" "$log"; then
        echo "Kaggle rejected the API token. $TOKEN_HELP" >&2
    elif grep -qiE "404|not found" "$log"; then
        cat >&2 <<EOF
Kaggle's API does not serve '$zip_name'. The full training set is offered as external links
(50 zips of ~10 GB, one per part) on
  $DATA_URL
Download them in a browser where you are logged in and have accepted the rules, put them in one
folder, then run:
  ./download_dfdc.sh $DATA_ROOT ${PART_ARGS[*]:-all} --zips-dir FOLDER
If the Data page names the zips differently, set DFDC_ZIP_NAME_FORMAT (printf format, now '$ZIP_NAME_FORMAT').
EOF
    else
        echo "kaggle failed (exit $status) for $zip_name; its output is in $log" >&2
    fi
    exit 1
}

# Downloads part $1 into the staging folder with the kaggle client; prints the zip path.
download_part() {
    local zip_name log status
    zip_name="$(zip_name_of "$1")"
    log="$STAGING/kaggle_part_$1.log"
    echo "part $1: downloading $zip_name from Kaggle ($COMPETITION)..." >&2
    set +e
    kaggle competitions download "$COMPETITION" -f "$zip_name" -p "$STAGING" 2>&1 | tee "$log" >&2
    status="${PIPESTATUS[0]}"
    set -e
    for candidate in "$STAGING/$zip_name" "$STAGING/$zip_name.zip"; do
        if [ "$status" -eq 0 ] && [ -f "$candidate" ]; then
            rm -f "$log"
            echo "$candidate"
            return
        fi
    done
    explain_kaggle_failure "$log" "$zip_name" "$status"
}

# Stops with setup instructions unless the kaggle client and a token are there (checked before the first download).
require_kaggle_client() {
    if ! command -v kaggle >/dev/null 2>&1; then
        echo "The kaggle command-line client is not installed: pip install kaggle (or pipx install kaggle)," \
             "then make sure 'kaggle' is on your PATH." >&2
        echo "$TOKEN_HELP" >&2
        exit 1
    fi
    if ! has_kaggle_credentials; then
        echo "No Kaggle API token found. $TOKEN_HELP" >&2
        echo "Then accept the competition rules at $RULES_URL" >&2
        exit 1
    fi
}

# Prints the zip of part $1 found in DIR $2 under any of the usual names (00 or 0), or nothing.
find_zip() {
    local name
    for name in "$(zip_name_of "$1")" "$(printf 'dfdc_train_part_%02d.zip' "$1")" \
                "$(printf 'dfdc_train_part_%d.zip' "$1")"; do
        if [ -f "$2/$name" ]; then
            echo "$2/$name"
            return
        fi
    done
}

FAILED_PARTS=()
fail_part() {
    echo "part $1: FAILED: $2" >&2
    FAILED_PARTS+=("$1")
}

# Unzips $2 into DATA_ROOT/dfdc_train_part_$1, whether the zip holds that folder or the bare files.
# The part folder appears only once complete, so an interrupted run never looks finished.
unpack_part() {
    local part="$1" zip="$2" owned_zip="$3" part_name="dfdc_train_part_$1" tmp source entries
    tmp="$DATA_ROOT/.unpacking_$part_name"
    rm -rf "$tmp"
    echo "part $part: unpacking $zip (a few minutes for 10 GB)..." >&2
    if ! unzip -q "$zip" -d "$tmp"; then
        rm -rf "$tmp"
        if [ "$owned_zip" = 1 ]; then
            rm -f "$zip"
            fail_part "$part" "$zip is corrupt or incomplete; deleted it, rerun to download it again"
        else
            fail_part "$part" "$zip is corrupt or incomplete"
        fi
        return
    fi
    rm -rf "$tmp/__MACOSX"
    source="$tmp"
    if [ ! -f "$tmp/metadata.json" ]; then
        entries=("$tmp"/*)
        if [ "${#entries[@]}" -eq 1 ] && [ -d "${entries[0]}" ]; then
            source="${entries[0]}"
        fi
    fi
    if [ ! -f "$source/metadata.json" ]; then
        rm -rf "$tmp"
        local advice="kept it for inspection"
        [ "$owned_zip" = 0 ] || advice="$advice; delete it to download it again"
        fail_part "$part" "$part_name has no metadata.json in $zip (expected at the top of the zip or in its one folder); $advice"
        return
    fi
    mv "$source" "$DATA_ROOT/$part_name"
    rm -rf "$tmp"
    if [ "$KEEP_ZIP" = 0 ]; then
        rm -f "$zip"
    fi
    echo "part $part: done -> $DATA_ROOT/$part_name" >&2
    DONE_COUNT=$((DONE_COUNT + 1))
}

KEEP_ZIP=0
ZIPS_DIR=""
POSITIONAL=()
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage 2>&1; exit 0 ;;
        --keep-zip) KEEP_ZIP=1 ;;
        --zips-dir) [ $# -ge 2 ] || fail_usage "--zips-dir needs a folder"; ZIPS_DIR="$2"; shift ;;
        --zips-dir=*) ZIPS_DIR="${1#*=}" ;;
        -*) fail_usage "unknown option: $1" ;;
        *) POSITIONAL+=("$1") ;;
    esac
    shift
done
if [ "${DFDC_IN_IMAGE:-0}" = 1 ]; then
    cat >&2 <<'EOF'
download_dfdc.sh runs on the host, not in the Docker image: the Kaggle client, its API token and unzip are set
up there, and the parts land in the folder that ./run.sh mounts. On the host:
  ./download_dfdc.sh DATA_ROOT [PARTS...]
  ./run.sh DATA_ROOT ./preprocess_data.sh /dataset
EOF
    exit 1
fi
[ "${#POSITIONAL[@]}" -ge 1 ] || fail_usage "DATA_ROOT is missing"
DATA_ROOT="${POSITIONAL[0]}"
PART_ARGS=("${POSITIONAL[@]:1}")
PARTS="$(parse_parts "${PART_ARGS[@]:-all}")" || exit 2
if [ -n "$ZIPS_DIR" ] && [ ! -d "$ZIPS_DIR" ]; then
    fail_usage "--zips-dir is not a folder: $ZIPS_DIR"
fi
command -v unzip >/dev/null 2>&1 || { echo "unzip not found: install it (e.g. sudo apt-get install unzip)" >&2; exit 1; }

mkdir -p "$DATA_ROOT"
DATA_ROOT="$(cd "$DATA_ROOT" && pwd)"
STAGING="$DATA_ROOT/.dfdc_downloads"
mkdir -p "$STAGING"
DONE_COUNT=0
SKIPPED_COUNT=0
for part in $PARTS; do
    part_dir="$DATA_ROOT/dfdc_train_part_$part"
    if [ -f "$part_dir/metadata.json" ]; then
        echo "part $part: already unpacked, skipping" >&2
        SKIPPED_COUNT=$((SKIPPED_COUNT + 1))
        continue
    fi
    if [ -e "$part_dir" ]; then
        fail_part "$part" "$part_dir exists without metadata.json; move it away and rerun"
        continue
    fi
    check_free_space "$part"
    if [ -n "$ZIPS_DIR" ]; then
        zip="$(find_zip "$part" "$ZIPS_DIR")"
        if [ -z "$zip" ]; then
            fail_part "$part" "no zip for it in $ZIPS_DIR (looked for $(zip_name_of "$part"), dfdc_train_part_$part.zip)"
            continue
        fi
        unpack_part "$part" "$zip" 0
    else
        zip="$(find_zip "$part" "$STAGING")"  # left by an earlier run whose unpack failed
        if [ -z "$zip" ]; then
            require_kaggle_client
            zip="$(download_part "$part")" || exit 1
        fi
        unpack_part "$part" "$zip" 1
    fi
done
rmdir "$STAGING" 2>/dev/null || true

echo "DFDC parts: $DONE_COUNT unpacked, $SKIPPED_COUNT already there, ${#FAILED_PARTS[@]} failed${FAILED_PARTS[*]:+ (${FAILED_PARTS[*]})}" >&2
[ "${#FAILED_PARTS[@]}" -eq 0 ]

#!/bin/sh
# epp-hold.sh - a contact-verifier hook that puts suspended domains on EPP
# clientHold and takes them off again when they are released.
#
# contact-verifier runs `hooks.command` once per event with the event JSON on
# stdin (CONTRACT section 8):
#
#   {"id":"<uuid>","type":"domain_suspended","at":"...","contactEmail":"...",
#    "externalIds":[...],"domains":["example.com",...],"reason":"..."}
#
# Exit 0 means "done"; any other exit status makes contact-verifier retry the
# same event later (10 s, doubling to 1 h) and hold back every later event
# until this one succeeds, so a hold is never overtaken by its release.
#
# What it does, for each domain in the event:
#
#   domain_suspended    add clientHold at the registry, unless the domain is
#                       already on clientHold for another reason (abuse,
#                       non-payment, a court order): then it is left alone,
#                       and nothing is remembered.
#   domain_unsuspended  remove clientHold, but only where this hook added
#                       it. A domain held for another reason stays held.
#   anything else       nothing (exit 0).
#
# Delivery is at least once: the same event can arrive again (after a crash,
# a timeout, or a replay by an operator). Events are deduplicated by id, every
# step is idempotent besides, and what this hook added is remembered in the
# state directory:
#
#   $STATE/done/<event id>           handled; a repeat is ignored
#   $STATE/adding/<domain>@<status>  about to add it (written before the EPP
#                                    call, so a crash in between still knows
#                                    the hold is ours)
#   $STATE/added/<domain>@<status>   added by this hook; a release removes it
#
# Keep the state directory on persistent storage and back it up with the
# database: without it a release cannot tell its own holds from others'.
# done/ grows by one empty file per event; files older than any replay you
# would do can go (e.g. find "$STATE/done" -type f -mtime +400 -delete).
# contact-verifier delivers one event at a time; do not run this script by
# hand while the daemon may be delivering.
#
# Configuration (environment; contact-verifier passes its own environment on,
# e.g. via Environment= in the systemd unit):
#
#   EPP_HOLD_STATE_DIR  the state directory
#                       (default /var/lib/contact-verifier/epp-hold)
#   EPP_HOLD_STATUSES   the statuses a suspension adds, space-separated
#                       (default "clientHold"; e.g. "clientHold
#                       clientTransferProhibited")
#   EPP_HOLD_DRY_RUN    1 (the default): do not talk to any registry; log what
#                       would be done and keep a simulated registry under
#                       $STATE/dry-run-registry/<domain> (one status a line).
#                       0: call the real EPP functions below, which you must
#                       write first.
#   EPP_HOLD_LOG        where dry-run and progress lines go (default: stderr,
#                       which contact-verifier keeps as the event's LastError
#                       when the hook fails)
#
# Requires jq (https://jqlang.github.io/jq/).
#
# Exit statuses: 0 done; 1 an EPP call failed (retried); 65 the event is not
# what this hook understands; 69 jq is missing; 73 the state directory is not
# writable. contact-verifier retries them all.

set -eu
set -f # no globbing: domain names are data

STATE=${EPP_HOLD_STATE_DIR:-/var/lib/contact-verifier/epp-hold}
STATUSES=${EPP_HOLD_STATUSES:-clientHold}
DRY_RUN=${EPP_HOLD_DRY_RUN:-1}
LOG=${EPP_HOLD_LOG:-}

log() {
    if [ -n "$LOG" ]; then
        printf '%s\n' "$*" >>"$LOG"
    else
        printf '%s\n' "$*" >&2
    fi
}

die() {
    status=$1
    shift
    # stderr is what contact-verifier records as the event's LastError.
    printf 'epp-hold: %s\n' "$*" >&2
    exit "$status"
}

# ---------------------------------------------------------------------------
# REGISTRAR: replace these two functions with your EPP client calls, then run
# with EPP_HOLD_DRY_RUN=0. Each must return non-zero on any failure (a
# timeout, an EPP result code other than 1000/1001) so the event is retried.
# ---------------------------------------------------------------------------

# epp_domain_statuses DOMAIN
#   Prints the domain's current statuses at the registry, one a line
#   (EPP <domain:info>, the s attribute of each <domain:status>).
epp_domain_statuses() {
    if [ "$DRY_RUN" = 1 ]; then
        if [ -f "$STATE/dry-run-registry/$1" ]; then
            cat "$STATE/dry-run-registry/$1"
        fi
        return 0
    fi
    # e.g.: my-epp-client domain-info "$1" | jq -r '.statuses[]'
    die 1 "epp_domain_statuses is a placeholder: replace it with your EPP client (or set EPP_HOLD_DRY_RUN=1)"
}

# epp_update_status DOMAIN add|rem STATUS
#   EPP <domain:update> with <domain:add><domain:status s="STATUS"/></domain:add>
#   or the same inside <domain:rem>. Adding a status the domain already has,
#   or removing one it does not have, must count as success (EPP answers
#   2306 there; treat it as done) so that a repeated event is harmless.
epp_update_status() {
    if [ "$DRY_RUN" = 1 ]; then
        log "dry-run: epp_update_status $1 $2 $3"
        registry="$STATE/dry-run-registry"
        mkdir -p "$registry"
        touch "$registry/$1"
        grep -vx "$3" "$registry/$1" >"$registry/$1.tmp" || true
        if [ "$2" = add ]; then
            printf '%s\n' "$3" >>"$registry/$1.tmp"
        fi
        mv "$registry/$1.tmp" "$registry/$1"
        return 0
    fi
    # e.g.: my-epp-client domain-update "$1" "--$2-status" "$3"
    die 1 "epp_update_status is a placeholder: replace it with your EPP client (or set EPP_HOLD_DRY_RUN=1)"
}

# ---------------------------------------------------------------------------

has_status() { # DOMAIN STATUS; a failed lookup ends the run (retried)
    statuses=$(epp_domain_statuses "$1") || die 1 "$1: cannot read its statuses"
    printf '%s\n' "$statuses" | grep -qx "$2"
}

hold() { # DOMAIN
    for s in $STATUSES; do
        mark="$1@$s"
        if [ -e "$STATE/added/$mark" ]; then
            log "$1: $s already added by this hook"
            continue
        fi
        if [ -e "$STATE/adding/$mark" ]; then
            # An earlier run recorded its intent and may or may not have
            # reached the registry: the status, if there, is ours.
            if ! has_status "$1" "$s"; then
                epp_update_status "$1" add "$s" || die 1 "$1: cannot add $s"
            fi
        else
            if has_status "$1" "$s"; then
                log "$1: already has $s for another reason; leaving it (a release will not remove it)"
                continue
            fi
            : >"$STATE/adding/$mark"
            epp_update_status "$1" add "$s" || die 1 "$1: cannot add $s"
        fi
        mv "$STATE/adding/$mark" "$STATE/added/$mark"
        log "$1: $s added"
    done
}

release() { # DOMAIN
    for s in $STATUSES; do
        mark="$1@$s"
        if [ -e "$STATE/added/$mark" ]; then
            file="$STATE/added/$mark"
        elif [ -e "$STATE/adding/$mark" ]; then
            file="$STATE/adding/$mark"
        else
            log "$1: $s was not added by this hook; leaving it"
            continue
        fi
        if has_status "$1" "$s"; then
            epp_update_status "$1" rem "$s" || die 1 "$1: cannot remove $s"
        fi
        rm -f "$file"
        log "$1: $s removed"
    done
}

command -v jq >/dev/null 2>&1 || die 69 "jq is required to read the event (install the jq package)"

event=$(cat)
printf '%s' "$event" | jq -e 'type == "object" and (.domains | type) == "array"' >/dev/null 2>&1 ||
    die 65 "stdin is not a contact-verifier event: $event"
id=$(printf '%s' "$event" | jq -r '.id')
type=$(printf '%s' "$event" | jq -r '.type')
case $id in
'' | *[!0-9a-f-]*) die 65 "the event's id is not a UUID: $id" ;;
esac

case $type in
domain_suspended) action=hold ;;
domain_unsuspended) action=release ;;
*)
    log "event $id: $type needs no EPP change"
    exit 0
    ;;
esac

mkdir -p "$STATE/done" "$STATE/adding" "$STATE/added" 2>/dev/null && [ -w "$STATE" ] ||
    die 73 "cannot write the state directory $STATE (set EPP_HOLD_STATE_DIR)"
if [ -e "$STATE/done/$id" ]; then
    log "event $id: $type already handled"
    exit 0
fi

domains=$(printf '%s' "$event" | jq -r '.domains[]')
# Names come from contact-verifier, already validated; refuse anything that
# could escape the state directory or the EPP client's arguments.
for d in $domains; do
    case $d in
    '' | .* | *..* | *[!a-z0-9.-]*) die 65 "event $id: unexpected domain name: $d" ;;
    esac
done

log "event $id: $type:" $domains
for d in $domains; do
    $action "$d"
done
: >"$STATE/done/$id"
exit 0

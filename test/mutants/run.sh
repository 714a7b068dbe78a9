#!/usr/bin/env bash
# Mutation check of the guarantees: breaks each guarantee on purpose, one
# at a time, in a scratch copy of the repository, runs the tests that claim
# it, and prints which test caught the break.
#
#   test/mutants/run.sh                  # every mutation (about 20 minutes on 2 cores)
#   test/mutants/run.sh sweep-loop-off   # only the named mutations
#   test/mutants/run.sh --baseline       # first run every named test on the unmutated copy
#   test/mutants/run.sh --check          # only apply and build each mutation (a minute)
#
# Exit status: 0 when every mutation was caught; 1 when one survived (its
# tests all passed), a mutation no longer applies (its line moved: fix the
# "old" text below), the mutated code does not build, or a named test did
# not run. Not part of CI: each mutation costs a worker build and a few
# minutes of reliability tests. docs/guarantees.md quotes the last table.
#
# Each mutation is a literal text replacement in one file that must match
# exactly once (the script fails loudly otherwise, so it can never test
# unmutated code). "\n" and "\t" in the replacement are a newline and a tab.
# Keep each keyed to one distinctive line, so that when code moves the
# mutation is re-targeted by editing its "old" text. What each breaks:
#
#   stock-condition-dropped  The reservation's per-SKU condition
#                            (available >= quantity) is dropped: stock can
#                            go negative (oversell).
#   random-charge-key        The payment stage charges under a key that
#                            differs per attempt instead of the order id: a
#                            redelivered payment charges again.
#   transition-from-any-status  The order's conditional write accepts any
#                            current status instead of the expected one: a
#                            stale or duplicate event rewrites a finished
#                            order.
#   second-refund            The refund's idempotency key differs per
#                            attempt: a repeated refund (a redelivery, a
#                            retried cancel) is a second refund.
#   poison-deleted           A permanent failure is deleted without being
#                            copied to the DLQ: the poison message is lost.
#   handlers-abandoned-at-sigterm  The stage handlers run on the receive
#                            context, so SIGTERM cancels them instead of
#                            letting them finish.
#   sweep-loop-off           The stuck-order sweep loop returns at once.
#   ack-before-effect        The consumer deletes a message before its
#                            handler runs: a crash or a failed handler loses
#                            the message.
#   no-heartbeat             The consumer never extends the visibility of a
#                            slow handler's message: it is delivered twice.
#   redrive-deletes-unsent   The DLQ redrive deletes every message of a page,
#                            including those the stage queue refused: a
#                            redrive during throttling or a refused entry
#                            loses dead letters.
#   bus-entry-errors-ignored Per-entry PutEvents failures are treated as
#                            success: an event EventBridge refused is lost
#                            and its message acknowledged.
#   unknown-fields-dropped   The order codec keeps no member it does not
#                            know: a write of this release erases what a
#                            newer release added to the order.
#   newer-schema-dead-lettered  An event whose schema_version is newer than
#                            this release's is dead-lettered instead of
#                            handed back for a task of the newer release.
#   overdue-walk-off         The sweep's walk of the order timeline does
#                            nothing: in the compact order format an order
#                            that stopped moving while young is never put on
#                            by_open, so the sweep never finds it.
#   overdue-write-unmarked   A write of an order already overdue does not put
#                            it on by_open: an order created or moved after
#                            the walk passed it is never swept.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
defpkg=test/reliability

# name | file | old text | new text | tests (space-separated; "dir:TestName"
# names a test in that package directory, a bare name one in test/reliability)
MUTATIONS=(
	"stock-condition-dropped|internal/store/reservation.go|cond := \"attribute_exists(sku) AND available >= :q AND (attribute_not_exists(#price) OR #price = :price)\"|cond := \"attribute_exists(sku) AND (attribute_not_exists(#price) OR #price = :price)\"|TestNoOversellAcrossTwoWorkers internal/store:TestLastUnitsAreNeverOversold internal/worker:TestFiftyConcurrentOrdersForTheLastTenUnits"
	"random-charge-key|internal/pipeline/handlers.go|s.Payments.Charge(ctx, ChargeRequest{IdempotencyKey: o.ID,|s.Payments.Charge(ctx, ChargeRequest{IdempotencyKey: o.ID + (&Service{}).now().String(),|TestDuplicatedEventsChangeNothing internal/worker:TestDuplicatePaymentForAPaidOrderChargesOnce internal/worker:TestSameMessageTwiceHasOneEffect"
	"transition-from-any-status|internal/store/order.go|cond := \"#s = :from\"|cond := \"attribute_exists(order_id) OR #s = :from\"|TestDuplicatedEventsChangeNothing internal/store:TestCreateGetAndConditionalApply internal/worker:TestPaymentForARejectedOrderIsRefundedAndDeadLettered"
	"second-refund|internal/pipeline/cancel.go|func RefundKey(orderID string) string { return \"refund-\" + orderID }|func RefundKey(orderID string) string { return \"refund-\" + orderID + (&Service{}).now().String() }|TestDuplicatedEventsChangeNothing internal/worker:TestPaymentForAnUnknownOrderIsRefundedAndDeadLettered internal/worker:TestPaymentForARejectedOrderIsRefundedAndDeadLettered"
	"poison-deleted|internal/delivery/settle.go|if dlErr := s.deadLetter(ctx, m, d.Reason, d.Err); dlErr != nil {|if dlErr := error(nil); dlErr != nil {|TestPoisonMessagesAreDeadLetteredAtOnce internal/delivery:TestSettlerCarriesOutEachDecision internal/queue:TestAPermanentFailureIsDeadLetteredWithItsReason internal/lambda:TestEachRecordOfABatchIsSettledByThePolicy"
	"handlers-abandoned-at-sigterm|internal/worker/drain.go|c.Run(ctx, work)|c.Run(ctx, ctx); _ = work|TestGracefulShutdownUnderLoad"
	"sweep-loop-off|internal/worker/sweep.go|func (w *Worker) sweepLoop(ctx context.Context) {|func (w *Worker) sweepLoop(ctx context.Context) {\n\treturn|TestSweepLoopMovesOnAnOrderWhoseEventWasLost"
	"ack-before-effect|internal/queue/settle.go|outcome, err := c.handler(work, m)|c.deleter.Submit(receipt)\n\toutcome, err := c.handler(work, m)|TestCrashConsistency TestPanickingHandlerIsRecoveredAndRetried internal/queue:TestATransientFailureIsRetriedAfterTheBackOff"
	"no-heartbeat|internal/queue/consumer.go|go c.heartbeat(hbDone)|_ = c.heartbeat|TestSlowHandlerIsNotDeliveredTwice TestSlowCarrierIsNotShippedTwice internal/queue:TestASlowHandlersMessageIsKeptInvisible"
	"redrive-deletes-unsent|internal/ops/dlq/dlq.go|continue // not accepted: it stays in the DLQ|// deleted all the same|internal/ops/dlq:TestRedriveLeavesRefusedEntriesInTheDLQ internal/ops/dlq:TestRedriveStopsOnAFailedBatchAndKeepsThePage internal/ops/console:TestConsoleRedriveKeepsWhatTheQueueRefused cmd/worker:TestRedriveListsRefusedMessagesAndFails"
	"bus-entry-errors-ignored|internal/bus/bus.go|if out.FailedEntryCount == 0 {|if out.FailedEntryCount >= 0 {|internal/bus:TestEntryFailuresReachExactlyTheirCallers"
	"unknown-fields-dropped|internal/pipeline/codec.go|eachMember(data, func(name []byte, val []byte) {|eachMember(nil, func(name []byte, val []byte) {|TestRollingDeployAndRollback internal/pipeline:TestAStageKeepsTheMembersANewerReleaseWrote internal/worker:TestWhatANewerReleaseWroteIsKeptOrHandedBack internal/lambda:TestTheFunctionKeepsMembersANewerReleaseWrote"
	"newer-schema-dead-lettered|internal/pipeline/event.go|return ev, Deferred(ReasonNewerSchema, fmt.Errorf(\"%s detail has schema_version %d, newer than this release's %d\", env|return ev, Permanent(ReasonInvalid, fmt.Errorf(\"%s detail has schema_version %d, newer than this release's %d\", env|TestRollingDeployAndRollback internal/pipeline:TestDecodeEventHandsBackWhatANewerReleaseWrote internal/worker:TestWhatANewerReleaseWroteIsKeptOrHandedBack internal/lambda:TestTheFunctionHandsBackRecordsOfANewerRelease"
	"overdue-walk-off|internal/store/overdue.go|func (st *Store) MarkOverdue(ctx context.Context) (int, error) {|func (st *Store) MarkOverdue(ctx context.Context) (int, error) {\n\treturn 0, nil|TestSweepLoopMovesOnAnOrderWhoseEventWasLost internal/store:TestTheSweepFindsEveryOrderNotDoneAndOnlyThose"
	"overdue-write-unmarked|internal/store/order.go|if !o.Done() && o.PlacedAt.Before(st.overdueBefore()) {|if false {|internal/store:TestTheSweepFindsEveryOrderNotDoneAndOnlyThose bench/runner:TestWriteUnitsOfAnOrderFromItsRecordedWrites"
)

baseline=0
check=0
only=()
for a in "$@"; do
	case "$a" in
	--baseline) baseline=1 ;;
	--check) check=1 ;;
	-h | --help)
		sed -n '2,15p' "$0"
		exit 0
		;;
	*) only+=("$a") ;;
	esac
done

selected=()
for m in "${MUTATIONS[@]}"; do
	name=${m%%|*}
	if [ ${#only[@]} -eq 0 ]; then
		selected+=("$m")
		continue
	fi
	for o in "${only[@]}"; do
		[ "$o" = "$name" ] && selected+=("$m")
	done
done
if [ ${#selected[@]} -eq 0 ]; then
	echo "no mutation named ${only[*]}" >&2
	exit 2
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/cc-mutants-XXXXXX")
logs="$scratch/logs"
trap 'if [ -z "${MUTANTS_KEEP:-}" ]; then rm -rf "$scratch/src"; fi' EXIT
mkdir -p "$scratch/src" "$logs"
# The working tree as it is (committed or not), without git metadata or
# build outputs. One copy for every mutation keeps the build cache warm.
tar -C "$repo" --exclude=./.git --exclude=./bin -cf - . | tar -C "$scratch/src" -xf -
src="$scratch/src"
echo "scratch copy: $src (logs in $logs)"

# mutate FILE OLD NEW: replace the one occurrence of OLD, or fail.
mutate() {
	perl -e '
		my ($f, $o, $n) = @ARGV;
		$n =~ s/\\n/\n/g; $n =~ s/\\t/\t/g;
		open(my $h, "<", $f) or die "$f: $!\n";
		local $/; my $s = <$h>; close $h;
		my $c = () = $s =~ /\Q$o\E/g;
		if ($c != 1) { print STDERR "$f: the mutation text matches $c times, want exactly 1: $o\n"; exit 3 }
		$s =~ s/\Q$o\E/$n/;
		open($h, ">", $f) or die "$f: $!\n"; print $h $s; close $h;
	' "$@"
}

# runtests LOG TEST...: runs the tests (one go test for all their
# packages); prints "failed=<names> passed=<names> status=<exit>".
runtests() {
	local log=$1
	shift
	local names=() pkgs=() t
	for t in "$@"; do
		case "$t" in
		*:*)
			pkgs+=("./${t%%:*}/")
			names+=("${t#*:}")
			;;
		*)
			pkgs+=("./$defpkg/")
			names+=("$t")
			;;
		esac
	done
	mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | sort -u)
	local re
	re="^($(
		IFS='|'
		echo "${names[*]}"
	))\$"
	set +e
	(cd "$src" && go test -count=1 -v -timeout 25m -run "$re" "${pkgs[@]}") >"$log" 2>&1
	local status=$?
	set -e
	local failed passed
	failed=$({ grep -oE '^\s*--- FAIL: Test[A-Za-z0-9_]+' "$log" || true; } | awk '{print $3}' | sort -u | tr '\n' ' ')
	passed=$({ grep -oE '^--- PASS: Test[A-Za-z0-9_]+' "$log" || true; } | awk '{print $3}' | sort -u | tr '\n' ' ')
	echo "failed=${failed% } passed=${passed% } status=$status"
}

rows=()
bad=0
if [ $baseline -eq 1 ]; then
	all=()
	for m in "${selected[@]}"; do
		IFS='|' read -r _ _ _ _ tests <<<"$m"
		for t in $tests; do all+=("$t"); done
	done
	mapfile -t all < <(printf '%s\n' "${all[@]}" | sort -u)
	echo "baseline: ${all[*]}"
	out=$(runtests "$logs/baseline.log" "${all[@]}")
	echo "baseline: $out"
	missing=""
	for t in "${all[@]}"; do
		case " ${out#* passed=} " in *" ${t#*:} "*) ;; *) missing="$missing $t" ;; esac
	done
	if [ "${out##*status=}" != 0 ] || [ -n "$missing" ]; then
		echo "the unmutated code fails its own tests (did not pass:$missing); fix that first ($logs/baseline.log)" >&2
		exit 1
	fi
fi

for m in "${selected[@]}"; do
	IFS='|' read -r name file old new tests <<<"$m"
	echo "== $name: $file; tests: $tests"
	cp "$repo/$file" "$src/$file"
	if ! mutate "$src/$file" "$old" "$new"; then
		rows+=("| $name | $tests | DOES NOT APPLY |")
		bad=1
		continue
	fi
	if [ $check -eq 1 ]; then
		if (cd "$src" && go build -o /dev/null ./cmd/worker) >"$logs/$name.log" 2>&1; then
			rows+=("| $name | $tests | applies and builds |")
		else
			rows+=("| $name | $tests | BUILD FAILED (see $logs/$name.log) |")
			bad=1
		fi
		cp "$repo/$file" "$src/$file"
		continue
	fi
	start=$(date +%s)
	# shellcheck disable=SC2086
	out=$(runtests "$logs/$name.log" $tests)
	took=$(($(date +%s) - start))
	cp "$repo/$file" "$src/$file"
	failed=$(sed -E 's/^failed=(.*) passed=.*/\1/' <<<"$out")
	passed=$(sed -E 's/.* passed=(.*) status=.*/\1/' <<<"$out")
	status=${out##*status=}
	echo "   $out (${took}s)"
	if grep -qE '\[build failed\]|\[setup failed\]|^# ' "$logs/$name.log"; then
		rows+=("| $name | $tests | BUILD FAILED (see $logs/$name.log) |")
		bad=1
	elif [ -n "$failed" ]; then
		rows+=("| $name | $tests | caught by $failed |")
	elif [ "$status" != 0 ]; then
		rows+=("| $name | $tests | caught: the test process failed without a test failure (see $logs/$name.log) |")
	else
		missing=""
		for t in $tests; do
			case " $passed " in *" ${t#*:} "*) ;; *) missing="$missing $t" ;; esac
		done
		if [ -n "$missing" ]; then
			rows+=("| $name | $tests | NOT RUN:$missing |")
		else
			rows+=("| $name | $tests | SURVIVED |")
		fi
		bad=1
	fi
done

echo
echo "| mutation | tests run | result |"
echo "|---|---|---|"
printf '%s\n' "${rows[@]}"
exit $bad

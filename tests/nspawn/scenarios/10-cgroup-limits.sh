# Per-vhost controller limits: MaxProcessesVHost, MemoryMaxVHost and CPUWeightVHost become pids.max,
# memory.max and cpu.weight of the vhost's cgroup where those controllers are delegated.
# timeout: 60
. "$ITK_TESTS/lib.sh"

avail=$(cat /sys/fs/cgroup/cgroup.controllers 2>/dev/null)
for c in pids memory cpu; do
  [[ " $avail " == *" $c "* ]] ||
    skip "the $c controller is not available in this container's cgroup2 (controllers: '${avail:-none}'): the limit keys stay inert here"
done
cat >>/etc/itk.d/10-alice.conf <<'EOF2'
MaxProcessesVHost = 50
MemoryMaxVHost = 256M
CPUWeightVHost = 50
EOF2
activate
v=/sys/fs/cgroup$(prop ControlGroup)/serving/v-alice.test
expect_eq "$(cat "$v/pids.max")" 50 "pids.max of alice.test"
expect_eq "$(cat "$v/memory.max")" $((256 * 1024 * 1024)) "memory.max of alice.test"
expect_eq "$(cat "$v/cpu.weight")" 50 "cpu.weight of alice.test"

// Shared-memory scoreboard: lock-free counters shared by master, acceptors and workers.
#include "proc/scoreboard.h"

#include <sys/mman.h>

#include "sys/io.h"

namespace itk {

static_assert(std::atomic<uint32_t>::is_always_lock_free && std::atomic<uint64_t>::is_always_lock_free &&
                  std::atomic<pid_t>::is_always_lock_free,
              "the scoreboard needs lock-free atomics to work across processes");

Scoreboard* scoreboard_create() {
  void* p = mmap(nullptr, sizeof(Scoreboard), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  // Anonymous shared memory is zero-filled, which is the initial state of every field.
  return static_cast<Scoreboard*>(p);
}

Admission scoreboard_admit(Scoreboard& sb, uint32_t slot, unsigned max_vhost, unsigned max_clients, uint32_t* entry) {
  if (sb.workers.fetch_add(1) >= max_clients || max_clients > kMaxWorkers) {
    sb.workers.fetch_sub(1);
    return Admission::server_full;
  }
  slot %= kMaxVHostSlots;
  uint32_t before = sb.vhost_workers[slot].fetch_add(1);
  if (max_vhost != 0 && before >= max_vhost) {
    sb.vhost_workers[slot].fetch_sub(1);
    sb.workers.fetch_sub(1);
    return Admission::vhost_full;
  }
  // A free entry must exist: live workers < max_clients <= kMaxWorkers. Start near the hint to keep it short.
  uint32_t hint = sb.next_entry.load(std::memory_order_relaxed);
  for (uint32_t n = 0; n < kMaxWorkers; n++) {
    uint32_t i = (hint + n) % kMaxWorkers;
    pid_t expected = 0;
    if (sb.worker_table[i].pid.compare_exchange_strong(expected, -1)) {
      sb.worker_table[i].slot.store(slot);
      sb.worker_table[i].since.store(now_ms());
      sb.next_entry.store(i + 1, std::memory_order_relaxed);
      *entry = i;
      return Admission::admitted;
    }
  }
  sb.vhost_workers[slot].fetch_sub(1);
  sb.workers.fetch_sub(1);
  return Admission::server_full;
}

void scoreboard_set_pid(Scoreboard& sb, uint32_t entry, pid_t pid) { sb.worker_table[entry % kMaxWorkers].pid.store(pid); }

void scoreboard_release(Scoreboard& sb, uint32_t entry) {
  WorkerEntry& e = sb.worker_table[entry % kMaxWorkers];
  if (e.pid.exchange(0) == 0) return;  // already released
  sb.vhost_workers[e.slot.load() % kMaxVHostSlots].fetch_sub(1);
  sb.workers.fetch_sub(1);
}

void scoreboard_release_own(Scoreboard& sb, uint32_t entry, pid_t pid) {
  WorkerEntry& e = sb.worker_table[entry % kMaxWorkers];
  if (pid <= 0 || !e.pid.compare_exchange_strong(pid, 0)) return;
  sb.vhost_workers[e.slot.load() % kMaxVHostSlots].fetch_sub(1);
  sb.workers.fetch_sub(1);
}

void scoreboard_count_served(Scoreboard& sb, uint32_t slot) {
  sb.served.fetch_add(1, std::memory_order_relaxed);
  sb.vhost_served[slot % kMaxVHostSlots].fetch_add(1, std::memory_order_relaxed);
}

void scoreboard_count_refused(Scoreboard& sb, uint32_t slot) {
  sb.refused.fetch_add(1, std::memory_order_relaxed);
  sb.vhost_refused[slot % kMaxVHostSlots].fetch_add(1, std::memory_order_relaxed);
}

void scoreboard_reset_acceptor(Scoreboard& sb, uint32_t index) {
  AcceptorEntry& a = sb.acceptors[index % kMaxAcceptors];
  a.pid.store(0);
  a.reading.store(0);
  for (SpareCount& s : a.spares) {
    s.count.store(0, std::memory_order_relaxed);
    s.slot_plus_one.store(0, std::memory_order_relaxed);
  }
}

std::unordered_map<uint32_t, uint32_t> scoreboard_spares(const Scoreboard& sb) {
  std::unordered_map<uint32_t, uint32_t> by_slot;
  for (const AcceptorEntry& a : sb.acceptors) {
    if (a.pid.load(std::memory_order_relaxed) == 0) continue;
    for (const SpareCount& s : a.spares) {
      const uint32_t key = s.slot_plus_one.load(std::memory_order_relaxed);
      if (key) by_slot[key - 1] += s.count.load(std::memory_order_relaxed);
    }
  }
  return by_slot;
}

bool scoreboard_find(const Scoreboard& sb, pid_t pid, uint32_t* entry) {
  if (pid <= 0) return false;
  for (uint32_t i = 0; i < kMaxWorkers; i++) {
    if (sb.worker_table[i].pid.load() == pid) {
      *entry = i;
      return true;
    }
  }
  return false;
}

}  // namespace itk

// Shared-memory scoreboard: live workers per vhost and in total, acceptor activity and request
// counters. Mapped MAP_SHARED by the master before the first fork, so every itk process sees it.
// It only ever informs admission and STATUS; the master re-checks any pid it reads here before
// signalling it, since a worker (tenant uid) can write to this mapping.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <unordered_map>

namespace itk {

constexpr uint32_t kMaxVHostSlots = 65536;
constexpr uint32_t kMaxWorkers = 16384;   // upper bound of MaxClients
constexpr uint32_t kMaxAcceptors = 256;   // live acceptors, across a reload's old and new generations

struct WorkerEntry {
  std::atomic<pid_t> pid;     // 0 = free, -1 = claimed, pid not yet known
  std::atomic<uint32_t> slot; // vhost slot it counts against
  std::atomic<int64_t> since; // now_ms() at admission: the connection's age, for MaxConnectionTime
};

constexpr uint32_t kMaxSparesPerAcceptor = 256;  // idle workers one acceptor keeps, all vhosts

// How many idle workers an acceptor keeps for one vhost: `slot_plus_one` 0 marks an unused pair.
struct SpareCount {
  std::atomic<uint32_t> slot_plus_one;
  std::atomic<uint32_t> count;
};

struct AcceptorEntry {
  std::atomic<pid_t> pid;
  std::atomic<uint32_t> reading;  // connections whose head is being read
  // Its idle workers per vhost, written by the acceptor alone; the master sums them for `itkctl status`
  // and clears them when the acceptor ends. At most one pair per vhost with idle workers.
  SpareCount spares[kMaxSparesPerAcceptor];
};

struct Scoreboard {
  std::atomic<uint32_t> workers;  // live workers, all vhosts
  std::atomic<uint64_t> served;   // responses written by workers
  std::atomic<uint64_t> refused;  // 503s from admission
  std::atomic<uint32_t> next_entry;  // where the next free worker_table search starts
  AcceptorEntry acceptors[kMaxAcceptors];
  std::atomic<uint32_t> vhost_workers[kMaxVHostSlots];
  // Per vhost, since start (slots follow ServerName across reloads): what `served` and `refused` count.
  std::atomic<uint64_t> vhost_served[kMaxVHostSlots];
  std::atomic<uint64_t> vhost_refused[kMaxVHostSlots];
  // Per vhost: FastCGI requests handed over by workers, plus one beat per second while a worker waits
  // for an answer. The master reads it as the pools' activity (FastCGIIdleTimeout).
  std::atomic<uint64_t> fastcgi_activity[kMaxVHostSlots];
  WorkerEntry worker_table[kMaxWorkers];
};

// Maps a zeroed scoreboard; returns nullptr with errno set on failure. Lives until exit.
Scoreboard* scoreboard_create();

enum class Admission { admitted, vhost_full, server_full };

// Reserves a worker for `slot` if the vhost is under `max_vhost` (0 = no per-vhost limit) and the
// server under `max_clients`. On success *entry is the reserved worker_table index.
Admission scoreboard_admit(Scoreboard& sb, uint32_t slot, unsigned max_vhost, unsigned max_clients, uint32_t* entry);
// Records the forked worker's pid in its entry.
void scoreboard_set_pid(Scoreboard& sb, uint32_t entry, pid_t pid);
// Gives back a reservation (fork failed, or the worker was reaped).
void scoreboard_release(Scoreboard& sb, uint32_t entry);
// Gives back `entry` only if it is still `pid`'s: a worker whose connection ended releases its own
// entry at once, and the acceptor's later release of the same entry (maybe reused by then) does nothing.
void scoreboard_release_own(Scoreboard& sb, uint32_t entry, pid_t pid);
// A response written for a vhost (its slot): counted in `served` and in the vhost's own count.
void scoreboard_count_served(Scoreboard& sb, uint32_t slot);
// A connection refused by admission (503) for a vhost.
void scoreboard_count_refused(Scoreboard& sb, uint32_t slot);
// An acceptor's entry as new: no pid, nothing being read, no idle worker (at its start and end).
void scoreboard_reset_acceptor(Scoreboard& sb, uint32_t index);
// Idle workers per vhost slot, all live acceptors' together (one pass over their entries).
std::unordered_map<uint32_t, uint32_t> scoreboard_spares(const Scoreboard& sb);
// Finds a live worker's entry by pid (for workers reaped by the master after their acceptor died).
bool scoreboard_find(const Scoreboard& sb, pid_t pid, uint32_t* entry);

}  // namespace itk

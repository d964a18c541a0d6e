// Client side of the key process: private keys that are public-key-only EVP_PKEYs whose signing is a
// request over this process's channel to the key process (docs/security.md, "Private keys"), and the
// registration of such channels.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "sys/unique_fd.h"
#include "tls/key_protocol.h"
#include "tls/tls_ptr.h"

namespace itk {

// An EVP_PKEY with `cert`'s public key whose signatures are made by key `key_id` of the key process.
// Returns nullptr with `error` for a certificate whose key is neither RSA nor EC.
EvpPkeyPtr key_client_pkey(X509* cert, uint32_t key_id, std::string& error);

// Trusted side (master, spawner): makes a channel bound to key `key_id` and the vhost `server_name` and
// registers the key process's end over `registration_fd`; `client_end` is the other end, for the one
// process that may use it; `also`: a second key it may use (key_send_registration). Returns 0, or -errno
// (-EINVAL: a name that is empty or too long).
[[nodiscard]] int key_register_bound_channel(int registration_fd, uint32_t key_id, std::string_view server_name,
                                             unique_fd& client_end, std::optional<uint32_t> also = std::nullopt);

// Makes `fd` (a client end from key_register_bound_channel) this process's channel, which the remote
// keys and the ticket keys use; a previous channel is closed. The channel is one of the two
// process-wide globals (docs/architecture.md, "Process-wide state"): OpenSSL calls the RSA and EC key
// methods without any context pointer of ours.
void key_client_adopt(int fd);

// Closes the channel (tests, which run several key processes one after another).
void key_client_close();

// One request and its reply over this process's channel (the key methods and the ticket keys use it).
// False when the key process refused or could not be reached, with `error` saying which; a malformed
// reply ends the process.
bool key_client_call(KeyMsg op, uint32_t key, uint32_t arg, std::string_view in, std::string& out,
                     std::string& error);

}  // namespace itk

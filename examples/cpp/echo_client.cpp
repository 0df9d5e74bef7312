// echo_client: a C++17 program on the C API of libaiplat, with the RAII
// helpers a C++ integrator writes once (here, in the example itself: the
// library ships C headers only).
//
// Shows: handles owned by std::unique_ptr with the library's destroy
// functions, buffers released with aiplat_free(), failures turned into
// exceptions carrying aiplat_error_last(), a log callback with C linkage,
// a subscription whose callback is a C++ lambda reached through user_data.
//
//   NATS_URL=nats://127.0.0.1:4222 ./echo_client demo.echo "hello" [--json]
// Sends a ChatRequest to SUBJECT (e.g. examples/echo_service) and prints
// the ChatResponse text. Exit codes: 0 answered, 1 error reply, 2 failure.
#include <aiplat/aiplat.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>

namespace {

// ---- RAII ------------------------------------------------------------------

template <auto Destroy>
struct Deleter {
  template <typename T>
  void operator()(T *p) const noexcept { Destroy(p); }
};
template <typename T, auto Destroy>
using Handle = std::unique_ptr<T, Deleter<Destroy>>;

using Config = Handle<aiplat_config, aiplat_config_destroy>;
using Bus = Handle<aiplat_bus, aiplat_bus_destroy>;
using Msg = Handle<aiplat_msg, aiplat_msg_destroy>;
using BusMsg = Handle<aiplat_bus_msg, aiplat_bus_msg_destroy>;
using Sub = Handle<aiplat_bus_sub, aiplat_bus_sub_destroy>;
using Buffer = std::unique_ptr<void, Deleter<aiplat_free>>;  // never free()

class Error : public std::runtime_error {
 public:
  Error(aiplat_status status, const std::string &what)
      : std::runtime_error(what), status_(status) {}
  aiplat_status status() const noexcept { return status_; }

 private:
  aiplat_status status_;
};

// Throws with the library's detail for the failure on this thread.
void check(aiplat_status st, std::string_view what) {
  if (st == AIPLAT_OK) return;
  char detail[512];
  aiplat_error_last(detail, sizeof detail);
  throw Error(st, std::string(what) + ": " + aiplat_status_str(st) + ": " + detail);
}

// Creates a handle through an aiplat_x_create(&out, args...) function.
template <typename H, typename Create, typename... Args>
H make(Create create, std::string_view what, Args... args) {
  typename H::pointer raw = nullptr;
  check(create(&raw, args...), what);
  return H(raw);
}

std::string get_string(aiplat_msg *m, const char *field) {
  const char *s = nullptr;
  check(aiplat_msg_get_string(m, field, &s), field);
  return s ? s : "";
}

// A subscription whose callback is any C++ callable: the callable lives in
// the Subscription object, the library gets a plain function and a pointer.
class Subscription {
 public:
  using Fn = std::function<void(aiplat_bus_msg *)>;
  Subscription(aiplat_bus *bus, const char *subject, Fn fn)
      : fn_(std::make_unique<Fn>(std::move(fn))) {
    aiplat_bus_sub *raw = nullptr;
    check(aiplat_bus_subscribe(bus, subject, nullptr, &Subscription::trampoline,
                               fn_.get(), &raw),
          "subscribe");
    sub_.reset(raw);
  }
  // The subscription is destroyed (sub_ declared last) before the callable.

 private:
  static void trampoline(aiplat_bus_msg *msg, void *user_data) {
    try {
      (*static_cast<Fn *>(user_data))(msg);
    } catch (const std::exception &e) {  // never unwind into C
      std::cerr << "echo_client: callback: " << e.what() << "\n";
    }
  }
  std::unique_ptr<Fn> fn_;
  Sub sub_;
};

std::atomic<int> g_log_records{0};

extern "C" void on_log(aiplat_log_level, const char *, size_t, void *) {
  g_log_records.fetch_add(1, std::memory_order_relaxed);
}

int run(const char *subject, const char *text, bool json) {
  aiplat_log_set_level(AIPLAT_LOG_INFO);
  aiplat_log_set_callback(on_log, nullptr);
  struct RestoreLog {
    ~RestoreLog() { aiplat_log_set_callback(nullptr, nullptr); }
  } restore_log;

  Config cfg = make<Config>(aiplat_config_create, "config");
  Bus bus = make<Bus>(aiplat_bus_create, "bus", cfg.get());
  check(aiplat_bus_connect(bus.get()), "connect");

  // A subscription with a lambda: count what the echo service is sent.
  std::atomic<int> seen{0};
  Subscription watch(bus.get(), subject, [&seen](aiplat_bus_msg *) { ++seen; });

  Msg req = make<Msg>(aiplat_msg_create, "message", AIPLAT_MSG_CHAT_REQUEST);
  check(aiplat_msg_set_string(req.get(), "user_id", "cpp"), "user_id");
  check(aiplat_msg_set_string(req.get(), "message", text), "message");
  uint8_t *raw_wire = nullptr;
  size_t wire_len = 0;
  check(aiplat_msg_encode(req.get(), &raw_wire, &wire_len), "encode");
  Buffer wire(raw_wire);

  aiplat_bus_msg *raw_reply = nullptr;
  check(aiplat_bus_request(bus.get(), subject, wire.get(), wire_len, nullptr, 5000,
                           &raw_reply),
        "request");
  BusMsg reply(raw_reply);
  Msg rep = make<Msg>(aiplat_msg_decode, "decode", AIPLAT_MSG_CHAT_RESPONSE,
                      static_cast<const uint8_t *>(aiplat_bus_msg_data(reply.get())),
                      aiplat_bus_msg_len(reply.get()));
  // Our own request also went to `watch`, on its delivery thread: give that
  // thread a moment (bounded) before reporting what it saw.
  for (int i = 0; i < 200 && seen.load() == 0; i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));

  if (json) {
    char *raw_json = nullptr;
    check(aiplat_msg_to_json(rep.get(), &raw_json), "to_json");
    Buffer owned(raw_json);
    std::cout << raw_json << "\n";
  }
  std::cerr << "echo_client: watched " << seen.load() << " request(s), "
            << g_log_records.load() << " log record(s)\n";
  if (aiplat_msg_has(rep.get(), "error")) {
    aiplat_msg *err = nullptr;  // borrowed from rep
    int64_t code = 0;
    check(aiplat_msg_get_message(rep.get(), "error", &err), "error");
    check(aiplat_msg_get_int64(err, "code", &code), "code");
    std::cerr << "error " << code << " ("
              << aiplat_status_str(static_cast<aiplat_status>(code))
              << "): " << get_string(err, "message") << "\n";
    return 1;
  }
  std::cout << get_string(rep.get(), "text") << "\n";
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc < 3) {
    std::cerr << "usage: echo_client SUBJECT TEXT [--json]\n";
    return 2;
  }
  try {
    return run(argv[1], argv[2], argc > 3 && std::strcmp(argv[3], "--json") == 0);
  } catch (const Error &e) {
    std::cerr << "echo_client: " << e.what() << "\n";
    return 2;
  }
}

#include "formats/keras/trial_read.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include "engine/error.h"

namespace dermal::formats::keras {

double trial_read_deadline_s(const std::string& path) {
  struct stat st{};
  const double mb = ::stat(path.c_str(), &st) == 0 ? static_cast<double>(st.st_size) / (1 << 20) : 0;
  return 10 + mb;
}

namespace {

// A child that used no CPU for this long is blocked, not looping: the fork copied a lock that
// another thread of this process held at that instant (AddressSanitizer's allocator, which has no
// fork handlers in GCC 12's runtime, in the tests), or the file never delivers. A new child,
// forked a moment later, does not inherit that lock.
constexpr double stall_s = 2;
constexpr int attempts = 3;

// User plus system clock ticks the process has used, or -1 when /proc cannot say.
long long cpu_ticks(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  const std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const size_t name_end = stat.rfind(')');  // the command name may hold spaces and parentheses
  if (name_end == std::string::npos) return -1;
  std::istringstream fields(stat.substr(name_end + 1));
  std::string field;
  long long ticks = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i)  // fields 14 and 15: utime, stime
    if (i >= 14) ticks += std::atoll(field.c_str());
  return ticks;
}

struct ChildOutcome {
  std::string answer;
  int status = 0;
  bool timed_out = false;
  bool stalled = false;
};

ChildOutcome run_child(const std::function<void()>& read, const std::string& what, double deadline_s) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw Error(ErrorKind::resources, "cannot read " + what + ": pipe: " + std::strerror(errno));
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    throw Error(ErrorKind::resources, "cannot read " + what + ": fork: " + std::strerror(errno));
  }
  if (pid == 0) {  // the child: one line back, "ok" or "<kind> <message>", then _exit (no atexit handlers)
    ::close(fds[0]);
    std::string answer = "ok";
    try {
      read();
    } catch (const Error& e) {
      answer = std::to_string(static_cast<int>(e.kind())) + " " + e.what();
    } catch (const std::exception& e) {
      answer = std::to_string(static_cast<int>(ErrorKind::invalid_model)) + " " + e.what();
    }
    for (size_t sent = 0; sent < answer.size();) {
      const ssize_t n = ::write(fds[1], answer.data() + sent, answer.size() - sent);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
    }
    ::_exit(0);
  }
  ::close(fds[1]);
  ChildOutcome out;
  using clock = std::chrono::steady_clock;
  const auto until = clock::now() + std::chrono::duration<double>(deadline_s);
  long long ticks = cpu_ticks(pid);
  auto ticks_changed = clock::now();
  for (;;) {
    const auto now = clock::now();
    if (now >= until) {
      out.timed_out = true;
      break;
    }
    const long long t = cpu_ticks(pid);
    if (t != ticks) {
      ticks = t;
      ticks_changed = now;
    } else if (t >= 0 && now - ticks_changed >= std::chrono::duration<double>(stall_s)) {
      out.stalled = true;
      break;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count();
    pollfd p{fds[0], POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(std::clamp<long long>(left, 1, 250)));
    if (r < 0 && errno != EINTR) break;
    if (r <= 0) continue;
    char buf[4096];
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the child closed its end: done, or dead
    out.answer.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  if (out.timed_out || out.stalled) ::kill(pid, SIGKILL);
  while (::waitpid(pid, &out.status, 0) < 0 && errno == EINTR) {
  }
  return out;
}

}  // namespace

void trial_read_in_child(const std::function<void()>& read, const std::string& what, double deadline_s) {
  ChildOutcome out;
  for (int attempt = 1; attempt <= attempts; ++attempt) {
    out = run_child(read, what, deadline_s);
    if (!out.stalled) break;
  }
  if (out.stalled)
    throw Error(ErrorKind::invalid_model, what + ": the process reading it stopped making progress (no CPU for " +
                                              std::to_string(static_cast<int>(stall_s)) + " s) in " + std::to_string(attempts) + " tries");
  if (out.timed_out)
    throw Error(ErrorKind::invalid_model, what + " did not finish reading within " + std::to_string(static_cast<int>(std::ceil(deadline_s))) +
                                              " s: the HDF5 library loops on this file (it is corrupt)");
  const int status = out.status;
  if (WIFSIGNALED(status) || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || out.answer.empty())
    throw Error(ErrorKind::invalid_model, what + ": the HDF5 library crashed reading this file" +
                                              (WIFSIGNALED(status) ? " (signal " + std::to_string(WTERMSIG(status)) + ")" : std::string()) +
                                              ": it is corrupt");
  if (out.answer == "ok") return;
  const size_t space = out.answer.find(' ');
  const int kind = std::atoi(out.answer.substr(0, space).c_str());
  throw Error(static_cast<ErrorKind>(kind), space == std::string::npos ? out.answer : out.answer.substr(space + 1));
}

}  // namespace dermal::formats::keras

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

#include "engine/error.h"

namespace dermal::formats::keras {

double trial_read_deadline_s(const std::string& path) {
  struct stat st{};
  const double mb = ::stat(path.c_str(), &st) == 0 ? static_cast<double>(st.st_size) / (1 << 20) : 0;
  return 10 + mb;
}

void trial_read_in_child(const std::function<void()>& read, const std::string& what, double deadline_s) {
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
  std::string answer;
  bool timed_out = false;
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(deadline_s);
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now()).count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)));
    if (r < 0 && errno != EINTR) break;
    if (r <= 0) continue;
    char buf[4096];
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the child closed its end: done, or dead
    answer.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out)
    throw Error(ErrorKind::invalid_model, what + " did not finish reading within " + std::to_string(static_cast<int>(std::ceil(deadline_s))) +
                                              " s: the HDF5 library loops on this file (it is corrupt)");
  if (WIFSIGNALED(status) || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || answer.empty())
    throw Error(ErrorKind::invalid_model, what + ": the HDF5 library crashed reading this file" +
                                              (WIFSIGNALED(status) ? " (signal " + std::to_string(WTERMSIG(status)) + ")" : std::string()) +
                                              ": it is corrupt");
  if (answer == "ok") return;
  const size_t space = answer.find(' ');
  const int kind = std::atoi(answer.substr(0, space).c_str());
  throw Error(static_cast<ErrorKind>(kind), space == std::string::npos ? answer : answer.substr(space + 1));
}

}  // namespace dermal::formats::keras

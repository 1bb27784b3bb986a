// Reading a Keras file once in a child process before reading it for real.
//
// Keras files hold HDF5, read by Debian 12's libhdf5 1.10, which is not robust against corrupt
// files: fuzzing (fuzz/keras_file.cpp) found files on which it never returns and files on which it
// reads out of bounds. Dermal cannot fix the library; it contains it. The whole read runs first in
// a forked child under a deadline: if the child crashes, is killed or runs past the deadline, the
// caller gets a clear dermal::Error and the process is untouched; if the child refuses the file,
// its Error comes back as it was; only a file the child read completely is then read here.
// A child that uses no CPU for 2 s is not looping but blocked on a lock the fork copied from
// another thread: it is killed and forked again (3 tries).
// The price is reading a Keras file twice (tens of milliseconds for the test models).
//
//   trial_read_in_child([&] { load(path); }, "'model.h5'", deadline_for(path));
#pragma once

#include <functional>
#include <string>

namespace dermal::formats::keras {

// 10 s, plus 1 s a megabyte of file.
double trial_read_deadline_s(const std::string& path);
void trial_read_in_child(const std::function<void()>& read, const std::string& what, double deadline_s);

}  // namespace dermal::formats::keras

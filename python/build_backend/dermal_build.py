"""The PEP 517 build backend of `pip install .`: CMake builds the extension (dermal._core) and this
writes the wheel, with nothing to download (pyproject.toml asks for no build requirements, so pip
works offline and in a fresh virtual environment).

    pip install .                                  # a wheel for this machine (Debian's libraries)
    python/make_wheel.sh                           # a self-contained wheel (libraries bundled)

The wheel holds the package (python/dermal/*.py), the extension, and the bundled default model
with its card, lesion-check statistics and backbone (dermal.Model() with no path loads it).
config_settings / environment: DERMAL_WHEEL_BUNDLE=1 bundles the shared libraries the extension
loads beside it, as auditwheel does: their run paths become $ORIGIN (patchelf), and each one's
Debian copyright file goes into the wheel's licenses.
"""

import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
NAME = "dermal"
MODEL_FILES = ["skinnet_mnv2_ham_isic224.onnx", "skinnet_mnv2_ham_isic224.json", "skinnet_mnv2_ham_isic224.md",
               "skinnet_mnv2_ham_isic224.check.json", "lesion_backbone_mnv2_112.onnx"]
# What every Linux with Python has, and auditwheel leaves out too: the C library's parts, the
# loader, and the C++ runtime (a second copy in one process would clash with the first).
SYSTEM_LIBRARIES = re.compile(r"^(libc|libm|libdl|libpthread|librt|libutil|libresolv|ld-linux-x86-64|linux-vdso|libstdc\+\+|libgcc_s)\.so")


def version():
    text = open(os.path.join(ROOT, "CMakeLists.txt")).read()
    return re.search(r"project\(dermal VERSION ([0-9.]+)", text).group(1)


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def _build_extension():
    """CMake in build-wheel/ (kept between builds: the next one is incremental)."""
    build = os.path.join(ROOT, "build-wheel")
    subprocess.run(["cmake", "-S", ROOT, "-B", build, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
                    "-DDERMAL_TESTS=OFF", "-DDERMAL_BENCH=OFF", "-DDERMAL_PYTHON_MODULE=ON",
                    "-DPython3_EXECUTABLE=" + sys.executable], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", build, "--target", "dermal_python"], check=True, stdout=sys.stderr)  # pip shows stderr
    package = os.path.join(build, "python", NAME)
    return [os.path.join(package, f) for f in os.listdir(package) if f.startswith("_core.")][0]


def _needed_libraries(extension):
    """The shared libraries the extension loads (ldd: direct and indirect), but the C library's."""
    out = subprocess.run(["ldd", extension], check=True, capture_output=True, text=True).stdout
    libs = []
    for line in out.splitlines():
        m = re.match(r"\s*(\S+) => (/\S+)", line)
        if m and not SYSTEM_LIBRARIES.match(m.group(1)):
            libs.append((m.group(1), os.path.realpath(m.group(2))))
    return libs


def _debian_copyright(path):
    """(package, copyright file) of the Debian package that owns a library file."""
    for candidate in (path, path.replace("/usr/lib/", "/lib/", 1)):
        owner = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        if owner.returncode == 0:
            package = owner.stdout.split(":")[0].strip()
            copyright_file = "/usr/share/doc/%s/copyright" % package
            if os.path.exists(copyright_file):
                return package, copyright_file
    return None, None


def _record_line(arcname, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "%s,sha256=%s,%d" % (arcname, digest, len(data))


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    bundle = os.environ.get("DERMAL_WHEEL_BUNDLE") == "1" or (config_settings or {}).get("bundle") == "1"
    extension = _build_extension()
    ver = version()
    tag = "cp%d%d" % sys.version_info[:2]
    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    wheel_name = "%s-%s-%s-%s-%s.whl" % (NAME, ver, tag, tag, platform)
    dist_info = "%s-%s.dist-info" % (NAME, ver)
    files = []  # (arcname, bytes, executable)
    package = os.path.join(ROOT, "python", NAME)
    for f in sorted(os.listdir(package)):
        if f.endswith(".py"):
            files.append(("%s/%s" % (NAME, f), open(os.path.join(package, f), "rb").read(), False))
    for f in MODEL_FILES:
        files.append(("%s/models/%s" % (NAME, f), open(os.path.join(ROOT, "models", f), "rb").read(), False))
    licenses = []
    scratch = os.path.join(ROOT, "build-wheel", "bundle")
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    ext_copy = os.path.join(scratch, os.path.basename(extension))
    shutil.copy2(extension, ext_copy)
    if bundle:
        # Each library beside the extension in dermal/.libs, found through $ORIGIN run paths.
        for soname, path in _needed_libraries(extension):
            lib = os.path.join(scratch, soname)
            shutil.copy2(path, lib)
            os.chmod(lib, 0o755)
            subprocess.run(["patchelf", "--set-rpath", "$ORIGIN", lib], check=True)
            files.append(("%s/.libs/%s" % (NAME, soname), open(lib, "rb").read(), True))
            package_name, copyright_file = _debian_copyright(path)
            if copyright_file and package_name not in [p for p, _ in licenses]:
                licenses.append((package_name, copyright_file))
        subprocess.run(["patchelf", "--set-rpath", "$ORIGIN/.libs", ext_copy], check=True)
    subprocess.run(["strip", "--strip-unneeded", ext_copy], check=True)
    files.append(("%s/%s" % (NAME, os.path.basename(extension)), open(ext_copy, "rb").read(), True))
    for package_name, copyright_file in licenses:
        files.append(("%s/licenses/%s.copyright" % (dist_info, package_name), open(copyright_file, "rb").read(), False))
    metadata = "\n".join([
        "Metadata-Version: 2.1", "Name: %s" % NAME, "Version: %s" % ver,
        "Summary: Skin-lesion classification with Grad-CAM explanations, in process (not a medical device)",
        "Requires-Python: >=3.9", "Requires-Dist: numpy",
        "Description-Content-Type: text/markdown", "",
        "Dermal's C++ engine as a Python module: ONNX and Keras image classifiers, Grad-CAM, the lesion "
        "check. The bundled model is trained on HAM10000 (CC BY-NC-SA 4.0: non-commercial); see "
        "dermal/models/skinnet_mnv2_ham_isic224.md. Not a medical device.", ""])
    wheel_meta = "Wheel-Version: 1.0\nGenerator: dermal_build\nRoot-Is-Purelib: false\nTag: %s-%s-%s\n" % (tag, tag, platform)
    files += [(dist_info + "/METADATA", metadata.encode(), False), (dist_info + "/WHEEL", wheel_meta.encode(), False),
              (dist_info + "/top_level.txt", (NAME + "\n").encode(), False)]
    record = [_record_line(a, d) for a, d, _ in files] + [dist_info + "/RECORD,,"]
    files.append((dist_info + "/RECORD", ("\n".join(record) + "\n").encode(), False))
    os.makedirs(wheel_directory, exist_ok=True)
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel_name), "w", zipfile.ZIP_DEFLATED) as z:
        for arcname, data, executable in files:
            info = zipfile.ZipInfo(arcname, date_time=(2026, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if executable else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    return wheel_name

// The Keras importer (formats/keras/) on an untrusted model file, as `dermal` opens one: a .keras
// zip (libzip, config.json, metadata.json, the weights' HDF5 image in place) or a legacy .h5
// (HDF5, the model_config attribute, model_weights). Built once per container
// (FUZZ_CONTAINER: zip or hdf5); inputs of the other container are left to its target.
#include <hdf5.h>

#include <cstring>

#include "formats/keras/hdf5_file.h"
#include "formats/keras/keras_importer.h"
#include "formats/keras/zip_archive.h"
#include "fuzz/fuzz_common.h"

using namespace dermal;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const bool zip = formats::keras::ZipArchive::has_signature(data, size);
  const bool hdf5 = formats::keras::Hdf5File::has_signature(data, size);
  if (std::strcmp(FUZZ_CONTAINER, "zip") == 0 ? !zip : !hdf5) return -1;  // not kept in the corpus
  const std::string& path = fuzz::write_scratch(data, size, ".keras");
  fuzz::refusals_allowed([&] {
    formats::KerasModelInfo info;
    formats::load_keras(path, &info);
  });
  // Every HDF5 object the importer opened is closed again, whatever the outcome.
  if (H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) != 0)
    fuzz::finding(std::to_string(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL)) + " HDF5 objects left open");
  return 0;
}

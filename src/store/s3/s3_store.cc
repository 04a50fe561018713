// Placeholder until the S3 backend lands.
#include "hyperfile/object_store.h"

namespace hyperfile {

Result<std::shared_ptr<ObjectStore>> NewS3Store(std::string_view bucket, std::string_view,
                                                const StoreOptions&) {
  return Status::NotSupported("s3://" + std::string(bucket) + ": S3 backend not built yet");
}

}  // namespace hyperfile

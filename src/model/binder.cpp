// Weight binding by tensor name with shape and type checks.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/dtype.h"
#include "model/weights.h"

namespace tandem::model {
namespace {

std::vector<int64_t> strip_trailing_ones(std::vector<int64_t> s) {
  while (s.size() > 1 && s.back() == 1) s.pop_back();
  return s;
}

std::string shape_str(const std::vector<int64_t>& s) {
  return fmt::format("[{}]", fmt::join(s, ", "));
}

}  // namespace

Result<const gguf::TensorInfo*> Binder::find(const std::string& name, const std::vector<int64_t>& shape,
                                             bool required) {
  const gguf::TensorInfo* t = f_.find_tensor(name);
  if (!t) {
    if (required) {
      return TANDEM_ERR(kNotFound, "{}: missing tensor '{}' (expected shape {})", f_.path(), name,
                        shape_str(shape));
    }
    return static_cast<const gguf::TensorInfo*>(nullptr);
  }
  if (strip_trailing_ones(t->shape) != strip_trailing_ones(shape)) {
    return TANDEM_ERR(kCorrupt, "{}: tensor '{}' has shape {}, expected {}", f_.path(), name,
                      shape_str(t->shape), shape_str(shape));
  }
  return t;
}

Status Binder::matrix(const std::string& name, int64_t cols, int64_t rows, bool required,
                      kernels::Matrix* out) {
  *out = kernels::Matrix{};
  TANDEM_ASSIGN_OR_RETURN(const gguf::TensorInfo* t, find(name, {cols, rows}, required));
  if (!t) return Status::ok();
  if (check_types_ && !kernels::can_dequantize(t->type)) {
    return TANDEM_ERR(kUnsupported, "{}: tensor '{}' has type {} which Tandem cannot compute with",
                      f_.path(), name, dtype_name(t->type));
  }
  const DTypeInfo& di = dtype_info(t->type);
  if (cols % di.block_elems != 0) {
    return TANDEM_ERR(kCorrupt, "{}: tensor '{}' row length {} is not a multiple of the {} block size {}",
                      f_.path(), name, cols, dtype_name(t->type), di.block_elems);
  }
  out->type = t->type;
  out->data = t->data;
  out->rows = rows;
  out->cols = cols;
  out->row_stride = row_bytes(t->type, cols);
  return Status::ok();
}

Status Binder::experts(const std::string& name, int64_t cols, int64_t rows, int64_t n_expert, bool required,
                       std::vector<kernels::Matrix>* out) {
  out->clear();
  TANDEM_ASSIGN_OR_RETURN(const gguf::TensorInfo* t, find(name, {cols, rows, n_expert}, required));
  if (!t) return Status::ok();
  if (check_types_ && !kernels::can_dequantize(t->type)) {
    return TANDEM_ERR(kUnsupported, "{}: tensor '{}' has type {} which Tandem cannot compute with",
                      f_.path(), name, dtype_name(t->type));
  }
  const DTypeInfo& di = dtype_info(t->type);
  if (cols % di.block_elems != 0) {
    return TANDEM_ERR(kCorrupt, "{}: tensor '{}' row length {} is not a multiple of the {} block size {}",
                      f_.path(), name, cols, dtype_name(t->type), di.block_elems);
  }
  const size_t rb = row_bytes(t->type, cols);
  for (int64_t e = 0; e < n_expert; ++e) {
    kernels::Matrix m;
    m.type = t->type;
    m.data = static_cast<const uint8_t*>(t->data) + static_cast<size_t>(e * rows) * rb;
    m.rows = rows;
    m.cols = cols;
    m.row_stride = rb;
    out->push_back(m);
  }
  return Status::ok();
}

Status Binder::vec(const std::string& name, std::vector<int64_t> shape, bool required, Vec* out) {
  *out = Vec{};
  TANDEM_ASSIGN_OR_RETURN(const gguf::TensorInfo* t, find(name, shape, required));
  if (!t) return Status::ok();
  const int64_t n = t->n_elements();
  if (t->type == DType::F32) {
    out->data = static_cast<const float*>(t->data);
    out->n = n;
    return Status::ok();
  }
  const DTypeInfo& di = dtype_info(t->type);
  if (!kernels::can_dequantize(t->type) || n % di.block_elems != 0) {
    return TANDEM_ERR(kUnsupported, "{}: tensor '{}' has type {} which Tandem cannot use for a parameter vector",
                      f_.path(), name, dtype_name(t->type));
  }
  std::vector<float>& dst = w_.owned.emplace_back(static_cast<size_t>(n));
  kernels::dequantize_row(t->type, t->data, dst.data(), n);
  out->data = dst.data();
  out->n = n;
  return Status::ok();
}

}  // namespace tandem::model

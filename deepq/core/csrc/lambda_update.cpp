// deepq/core/fast_mlp.py's LambdaUpdate, compiled: the same ATen kernels in the same order, called from C++.
//
// LambdaUpdate (Python) is the definition; this file is its transliteration, line for line, so that the ~40 kernel
// calls of one update do not each pay Python's call overhead (~5 µs each; the update of PQN's 256-256 LayerNorm MLP
// on 128 samples: ~0.58 against ~0.72 ms). It computes bit for bit what the Python does
// (tests/test_compiled.py); deepq/core/compiled.py builds it (torch.utils.cpp_extension) and says when it cannot.
// Net's forward pass is also what acting takes for batches (fast_mlp.NumpyMLP._batch): the same kernels.
//
//   forward: z = h·Wᵀ + b, LayerNorm (keeping its mean and 1/σ), ReLU per hidden layer; Q = h·Wᵀ + b
//   dL/dQ(s, a) of mean((Q(s, a) − G)²) (or Huber, δ = 1), zero for the other actions
//   backward: dW = gᵀ·h_in, db = Σ g per layer, back through ReLU and LayerNorm with ATen's backward kernels
//   the gradient's norm clipped as nn.utils.clip_grad_norm_ does (scale by max_norm / (norm + 1e-6) if < 1)
#include <torch/extension.h>

#include <cmath>
#include <memory>
#include <optional>
#include <tuple>
#include <vector>

namespace {

struct Norm {  // a LayerNorm over the last dimension (or none: a ReLU alone)
  std::optional<at::Tensor> gamma, beta;  // (out,)
  double eps = 0.0;
};

struct Kept {  // what a LayerNorm + ReLU backward needs
  at::Tensor z, mean, rstd, out;
};

struct Trace {  // what a forward pass keeps for the backward: each layer's input, its norm's, the convolution's
  std::vector<at::Tensor> inputs;
  std::vector<Kept> kept;
  at::Tensor x, z4;  // the convolution's input (B, C, H, W) and output
};

// LayerNorm (if any) and ReLU of z (R, out): fast_mlp._norm_relu; `kept` (if any) gets what the backward needs.
at::Tensor norm_relu(const at::Tensor& z, const Norm& norm, Kept* kept) {
  at::Tensor y = z, mean = z, rstd = z;
  if (norm.gamma) {
    std::tie(y, mean, rstd) = at::native_layer_norm(z, {z.size(1)}, norm.gamma, norm.beta, norm.eps);
  }
  at::Tensor out = at::relu_(y);
  if (kept) *kept = {z, mean, rstd, out};
  return out;
}

// Back through the ReLU and LayerNorm from g = dL/d(their output); dγ, dβ into the gradient: fast_mlp._norm_relu_backward.
at::Tensor norm_relu_backward(at::Tensor g, const Kept& kept, const Norm& norm, std::optional<at::Tensor>& grad_gamma,
                              std::optional<at::Tensor>& grad_beta) {
  g = at::threshold_backward(g, kept.out, 0.0);  // 0 where the ReLU's output was 0
  if (norm.gamma) {
    auto [dz, dgamma, dbeta] = at::native_layer_norm_backward(g, kept.z, {kept.z.size(1)}, kept.mean, kept.rstd,
                                                              norm.gamma, norm.beta, {true, true, true});
    grad_gamma->copy_(dgamma);
    grad_beta->copy_(dbeta);
    g = dz;
  }
  return g;
}

// deepq's MLP or small CNN, on the network's own weight tensors (the optimizer updates them in place): its forward
// pass as LambdaUpdate's body and NumpyMLP's batches take it.
class Net {
 public:
  // per Linear (weight (out, in), bias (out,)), per hidden layer its norm; with a convolution, entry 0 of every list
  // is the convolution's and its channels' norm.
  Net(std::vector<at::Tensor> weights, std::vector<at::Tensor> biases, std::vector<std::optional<at::Tensor>> gammas,
      std::vector<std::optional<at::Tensor>> betas, std::vector<double> eps, bool has_conv)
      : w_(std::move(weights)), b_(std::move(biases)), has_conv_(has_conv) {
    for (size_t i = 0; i < gammas.size(); ++i) norms_.push_back({gammas[i], betas[i], eps[i]});
  }

  // Q values (B, A) of obs (B, *obs_shape); with a trace, what the backward needs.
  at::Tensor forward(const at::Tensor& obs, Trace* trace) const {
    const int64_t n = obs.size(0);
    const size_t first = has_conv_ ? 1 : 0, last = w_.size() - 1;
    if (trace) {
      trace->inputs.assign(w_.size(), at::Tensor());
      trace->kept.assign(w_.size(), Kept());
    }
    at::Tensor h;
    if (has_conv_) {  // the convolution, then each output pixel's channels as a row
      at::Tensor x = obs.reshape({n, -1, obs.size(-2), obs.size(-1)}).to(at::kFloat);  // (B, C, H, W)
      at::Tensor z4 = at::conv2d(x, w_[0], b_[0]);  // (B, 16, H − 2, W − 2)
      at::Tensor out = norm_relu(z4.permute({0, 2, 3, 1}).reshape({-1, z4.size(1)}), norms_[0],
                                 trace ? &trace->kept[0] : nullptr);
      h = out.view({n, -1, out.size(1)}).transpose(1, 2).reshape({n, -1});  // (B, 16·L), torch's Flatten order
      if (trace) {
        trace->x = x;
        trace->z4 = z4;
      }
    } else {
      h = obs.reshape({n, -1}).to(at::kFloat);  // (B, D)
    }
    for (size_t i = first; i <= last; ++i) {
      if (trace) trace->inputs[i] = h;
      if (i == last) return at::addmm(b_[i], h, w_[i].t());  // (B, A)
      h = norm_relu(at::addmm(b_[i], h, w_[i].t()), norms_[i], trace ? &trace->kept[i] : nullptr);
    }
    return h;
  }

  // Q values for acting: NumpyMLP._batch.
  at::Tensor q(const at::Tensor& obs) const {
    at::NoGradGuard no_grad;
    return forward(obs, nullptr);
  }

  std::vector<at::Tensor> w_, b_;
  std::vector<Norm> norms_;
  bool has_conv_;
};

class LambdaStep {
 public:
  // net: the network (fast_mlp's LambdaUpdate builds it over its weights); grads: views of the flat gradient shaped
  // like the weights and norms, in the net's order.
  LambdaStep(std::shared_ptr<Net> net, std::vector<at::Tensor> grad_weights, std::vector<at::Tensor> grad_biases,
             std::vector<std::optional<at::Tensor>> grad_gammas, std::vector<std::optional<at::Tensor>> grad_betas,
             at::Tensor flat_grad, bool mse, double max_grad_norm)
      : net_(std::move(net)), gw_(std::move(grad_weights)), gb_(std::move(grad_biases)),
        ggamma_(std::move(grad_gammas)), gbeta_(std::move(grad_betas)), flat_grad_(std::move(flat_grad)), mse_(mse),
        max_grad_norm_(max_grad_norm) {}

  // One λ-return regression's gradient into the flat buffer, clipped: (the loss, each sample's |G − Q(s, a)|).
  // A non-finite loss returns before the backward (the caller raises).
  std::tuple<double, at::Tensor> grad(const at::Tensor& obs, const at::Tensor& actions, const at::Tensor& returns) {
    at::NoGradGuard no_grad;
    const Net& net = *net_;
    const int64_t n = actions.size(0);
    const size_t first = net.has_conv_ ? 1 : 0, last = net.w_.size() - 1;
    Trace trace;
    at::Tensor h = net.forward(obs, &trace);
    at::Tensor taken = actions.view({n, 1});
    at::Tensor err = h.gather(1, taken).view({n}) - returns;  // (B,) Q(s, a) − G
    double loss;
    at::Tensor dq;
    if (mse_) {
      loss = at::dot(err, err).item<double>() / n;
      dq = err * (2.0 / n);
    } else {
      at::Tensor abs_err = err.abs();
      loss = at::where(abs_err < 1.0, 0.5 * err * err, abs_err - 0.5).mean().item<double>();
      dq = err.clamp(-1.0, 1.0) * (1.0 / n);
    }
    if (!std::isfinite(loss)) return {loss, err};
    at::Tensor g = at::zeros_like(h).scatter_(1, taken, dq.view({n, 1}));  // (B, A)
    at::mm_out(gw_[last], g.t(), trace.inputs[last]);
    at::sum_out(gb_[last], g, 0);
    g = at::mm(g, net.w_[last]);
    for (size_t i = last; i-- > first;) {
      g = norm_relu_backward(g, trace.kept[i], net.norms_[i], ggamma_[i], gbeta_[i]);
      at::mm_out(gw_[i], g.t(), trace.inputs[i]);
      at::sum_out(gb_[i], g, 0);
      if (i > first || net.has_conv_) g = at::mm(g, net.w_[i]);
    }
    if (net.has_conv_) {  // back to each pixel's channels, (B·L, 16), then the convolution's dW, db
      const at::Tensor& z4 = trace.z4;
      const int64_t c = z4.size(1);
      g = g.view({n, c, -1}).transpose(1, 2).reshape({-1, c});
      g = norm_relu_backward(g, trace.kept[0], net.norms_[0], ggamma_[0], gbeta_[0]);
      at::Tensor g4 = g.view({n, z4.size(2), z4.size(3), c}).permute({0, 3, 1, 2});
      std::vector<int64_t> bias_sizes{c};
      auto [dx, dw, db] = at::convolution_backward(g4, trace.x, net.w_[0], at::OptionalIntArrayRef(bias_sizes),
                                                   {1, 1}, {0, 0}, {1, 1}, false, {0, 0}, 1, {false, true, true});
      gw_[0].copy_(dw);
      gb_[0].copy_(db);
    }
    if (max_grad_norm_ > 0) {
      double coef = max_grad_norm_ / (std::sqrt(at::dot(flat_grad_, flat_grad_).item<double>()) + 1e-6);
      if (coef < 1.0) flat_grad_.mul_(coef);
    }
    return {loss, err.abs_()};
  }

 private:
  std::shared_ptr<Net> net_;
  std::vector<at::Tensor> gw_, gb_;
  std::vector<std::optional<at::Tensor>> ggamma_, gbeta_;
  at::Tensor flat_grad_;
  bool mse_;
  double max_grad_norm_;
};

// The optimizers' element-wise arithmetic, written out so that one pass over the flat buffers does what several of
// torch's kernels do one after another. Each line rounds as the kernel it replaces rounds on CPU (this file is
// compiled with -ffp-contract=off, so a std::fma is exactly where torch's kernel has one): lerp_ with a weight
// w < 0.5 is s + w·(e − s) as one fma; addcmul_ is s + (value·a)·b as one fma; addcdiv_ is s + (value·a)/b; add_ with
// alpha is s + alpha·o as one fma. The square roots stay torch's own kernel (at::sqrt: on x86 MKL's vsSqrt, which is
// not the correctly rounded root in ~0.6% of elements, so it cannot be written out). tests/test_compiled.py holds
// both steps to fast_mlp's radam_step and rmsprop_step (torch's kernels) bit for bit.
inline float lerp_small(float s, float e, float w) { return std::fma(w, e - s, s); }  // torch's lerp for |w| < 0.5
inline float lerp_large(float s, float e, float w) { return std::fma(-(1.0f - w), e - s, e); }  // e − (e − s)(1 − w)
inline float addcmul(float s, float value, float a, float b) { return std::fma(value * a, b, s); }
inline float addcdiv(float s, float value, float a, float b) { return s + value * a / b; }

// fast_mlp.radam_step in three passes over the buffers instead of six: m and v; √v (torch's kernel); θ.
void radam_step(at::Tensor param, const at::Tensor& grad, at::Tensor exp_avg, at::Tensor exp_avg_sq, double t,
                double lr, double beta1, double beta2, double eps) {
  at::NoGradGuard no_grad;
  const int64_t n = param.numel();
  float* __restrict__ theta = param.data_ptr<float>();
  const float* __restrict__ g = grad.data_ptr<float>();
  float* __restrict__ m = exp_avg.data_ptr<float>();
  float* __restrict__ v = exp_avg_sq.data_ptr<float>();
  const float w = static_cast<float>(1 - beta1), b2 = static_cast<float>(beta2), c2 = static_cast<float>(1 - beta2);
  if (std::abs(w) < 0.5f) {  // exp_avg.lerp_(grad, 1 − β1); exp_avg_sq.mul_(β2).addcmul_(grad, grad, 1 − β2)
    for (int64_t i = 0; i < n; ++i) {
      m[i] = lerp_small(m[i], g[i], w);
      v[i] = addcmul(v[i] * b2, c2, g[i], g[i]);
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      m[i] = lerp_large(m[i], g[i], w);
      v[i] = addcmul(v[i] * b2, c2, g[i], g[i]);
    }
  }
  const double correction1 = 1 - std::pow(beta1, t), correction2 = 1 - std::pow(beta2, t);
  const double rho_inf = 2 / (1 - beta2) - 1;
  const double rho_t = rho_inf - 2 * t * std::pow(beta2, t) / correction2;
  if (rho_t > 5.0) {
    const double rect = std::sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t));
    const at::Tensor root = exp_avg_sq.sqrt();
    const float* __restrict__ r = root.data_ptr<float>();
    const float e = static_cast<float>(eps);
    const float value = static_cast<float>(-lr * rect * std::sqrt(correction2) / correction1);
    for (int64_t i = 0; i < n; ++i) theta[i] = addcdiv(theta[i], value, m[i], r[i] + e);  // addcdiv_(m, √v + ε)
  } else {
    const float alpha = static_cast<float>(-lr / correction1);
    for (int64_t i = 0; i < n; ++i) theta[i] = std::fma(alpha, m[i], theta[i]);  // add_(m, alpha)
  }
}

// fast_mlp.rmsprop_step (centered, with momentum) in three passes instead of nine: v, ḡ and v − ḡ²; its √ (torch's
// kernel); b and θ.
void rmsprop_step(at::Tensor param, const at::Tensor& grad, at::Tensor square_avg, at::Tensor grad_avg,
                  at::Tensor momentum_buffer, double alpha, double eps, double momentum, double lr) {
  at::NoGradGuard no_grad;
  const int64_t n = param.numel();
  float* __restrict__ theta = param.data_ptr<float>();
  const float* __restrict__ g = grad.data_ptr<float>();
  float* __restrict__ v = square_avg.data_ptr<float>();
  float* __restrict__ gbar = grad_avg.data_ptr<float>();
  float* __restrict__ b = momentum_buffer.data_ptr<float>();
  at::Tensor spread = at::empty_like(square_avg);
  float* __restrict__ d = spread.data_ptr<float>();
  const float a = static_cast<float>(alpha), c = static_cast<float>(1 - alpha);
  const bool small = std::abs(c) < 0.5f;
  for (int64_t i = 0; i < n; ++i) {
    const float vi = addcmul(v[i] * a, c, g[i], g[i]);  // square_avg.mul_(α).addcmul_(g, g, 1 − α)
    const float gi = small ? lerp_small(gbar[i], g[i], c) : lerp_large(gbar[i], g[i], c);  // grad_avg.lerp_(g, 1 − α)
    v[i] = vi;
    gbar[i] = gi;
    d[i] = addcmul(vi, -1.0f, gi, gi);  // square_avg.addcmul(ḡ, ḡ, value=−1)
  }
  spread.sqrt_();
  const float e = static_cast<float>(eps), mu = static_cast<float>(momentum), step = static_cast<float>(-lr);
  for (int64_t i = 0; i < n; ++i) {
    const float bi = addcdiv(b[i] * mu, 1.0f, g[i], d[i] + e);  // b.mul_(μ).addcdiv_(g, √(v − ḡ²) + ε)
    b[i] = bi;
    theta[i] = std::fma(step, bi, theta[i]);  // param.add_(b, alpha=−lr)
  }
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  using pybind11::arg;
  pybind11::class_<Net, std::shared_ptr<Net>>(m, "Net")
      .def(pybind11::init<std::vector<at::Tensor>, std::vector<at::Tensor>, std::vector<std::optional<at::Tensor>>,
                          std::vector<std::optional<at::Tensor>>, std::vector<double>, bool>(),
           arg("weights"), arg("biases"), arg("gammas"), arg("betas"), arg("eps"), arg("has_conv"))
      .def("q", &Net::q, arg("obs"));
  pybind11::class_<LambdaStep>(m, "LambdaStep")
      .def(pybind11::init<std::shared_ptr<Net>, std::vector<at::Tensor>, std::vector<at::Tensor>,
                          std::vector<std::optional<at::Tensor>>, std::vector<std::optional<at::Tensor>>, at::Tensor,
                          bool, double>(),
           arg("net"), arg("grad_weights"), arg("grad_biases"), arg("grad_gammas"), arg("grad_betas"),
           arg("flat_grad"), arg("mse"), arg("max_grad_norm"))
      .def("grad", &LambdaStep::grad);
  m.def("radam_step", &radam_step, arg("param"), arg("grad"), arg("exp_avg"), arg("exp_avg_sq"), arg("t"), arg("lr"),
        arg("beta1"), arg("beta2"), arg("eps"));
  m.def("rmsprop_step", &rmsprop_step, arg("param"), arg("grad"), arg("square_avg"), arg("grad_avg"),
        arg("momentum_buffer"), arg("alpha"), arg("eps"), arg("momentum"), arg("lr"));
}

#include "cri/rpc_observer.h"

#include <chrono>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace kapal::cri {

namespace {

using grpc::experimental::InterceptionHookPoints;

class RpcObserver : public grpc::experimental::Interceptor {
 public:
  RpcObserver(std::string method, metrics::RpcMetrics& metrics, base::Logger& logger)
      : method_(std::move(method)),
        metrics_(metrics),
        logger_(logger),
        start_(std::chrono::steady_clock::now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      grpc::Status status = methods->GetSendStatus();
      if (status.error_code() == grpc::StatusCode::UNIMPLEMENTED &&
          status.error_message().empty()) {
        // method_ is "/runtime.v1.RuntimeService/Attach".
        status = grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                              absl::StrCat(method_.substr(1), " is not implemented by kapal yet"));
        methods->ModifySendStatus(status);
      }
      Record(status);
    }
    methods->Proceed();
  }

 private:
  void Record(const grpc::Status& status) {
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    auto code = static_cast<absl::StatusCode>(status.error_code());
    std::string code_name = absl::StatusCodeToString(code);
    metrics_.Observe(method_, code_name, seconds);
    // INTERNAL and UNKNOWN are kapal's faults; the other codes describe the request.
    bool ours = code == absl::StatusCode::kInternal || code == absl::StatusCode::kUnknown ||
                code == absl::StatusCode::kDataLoss;
    base::LogLevel level = ours ? base::LogLevel::kWarn : base::LogLevel::kDebug;
    if (logger_.Enabled(level)) {
      std::string line = absl::StrFormat("rpc %s %s %.3fms", method_, code_name, seconds * 1000);
      if (!status.ok()) absl::StrAppend(&line, ": ", status.error_message());
      logger_.Write(level, line);
    }
  }

  std::string method_;
  metrics::RpcMetrics& metrics_;
  base::Logger& logger_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace

grpc::experimental::Interceptor* RpcObserverFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  return new RpcObserver(info->method(), metrics_, logger_);
}

}  // namespace kapal::cri

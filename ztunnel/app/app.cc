#include "ztunnel/app/app.h"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdio>
#include <future>
#include <thread>

#include "ztunnel/core/log.h"
#include "ztunnel/identity/file_certs.h"
#include "ztunnel/io/errors.h"
#include "ztunnel/io/probe.h"
#include "ztunnel/io/socket_options.h"
#include "ztunnel/proxy/worker.h"
#include "ztunnel/redirect/iptables.h"
#include "ztunnel/state/state_store.h"
#include "ztunnel/tls/ktls.h"
#include "ztunnel/xds/local_config.h"

namespace zt::app {

namespace {

// Control-loop period: file watchers that cannot use inotify are polled this often.
constexpr int kControlPollMs = 1000;

int fatal(const std::string& message) {
  ZT_ERROR("{}", message);
  std::fprintf(stderr, "ztunnel: %s\n", message.c_str());
  return 1;
}

proxy::ProxyConfig makeProxyConfig(const Config& c) {
  proxy::ProxyConfig p;
  p.outboundAddr = c.outboundAddr;
  p.inboundAddr = c.inboundAddr;
  p.inboundPlaintextAddr = c.inboundPlaintextAddr;
  p.socks5Addr = c.socks5Addr;
  p.enableSocks5 = c.enableSocks5;
  if (c.workloadInfo) {
    p.workloadNamespace = c.workloadInfo->ns;
    p.workloadName = c.workloadInfo->name;
    p.workloadServiceAccount = c.workloadInfo->serviceAccount;
  }
  p.network = c.network;
  p.packetMark = c.packetMark;
  p.origSrc = c.enableOrigSrc == OrigSrc::kEnabled    ? proxy::OrigSrcMode::kOn
              : c.enableOrigSrc == OrigSrc::kDisabled ? proxy::OrigSrcMode::kOff
                                                      : proxy::OrigSrcMode::kAuto;
  p.keepalive.enabled = c.keepaliveEnabled;
  p.keepalive.time = std::chrono::duration_cast<std::chrono::seconds>(c.keepaliveTime);
  p.keepalive.interval = std::chrono::duration_cast<std::chrono::seconds>(c.keepaliveInterval);
  p.keepalive.retries = static_cast<int>(c.keepaliveRetries);
  p.userTimeout = c.userTimeoutEnabled;
  p.poolMaxStreamsPerConnection = c.poolMaxStreamsPerConnection;
  p.poolUnusedReleaseTimeout = c.poolUnusedReleaseTimeout;
  p.h2StreamWindow = c.http2StreamWindowSize;
  p.h2ConnectionWindow = c.http2ConnectionWindowSize;
  p.h2FrameSize = c.http2FrameSize;
  return p;
}

// One worker: its thread, its mailbox, and (once started) the Worker itself.
struct WorkerSlot {
  std::unique_ptr<proxy::WorkerMailbox> mailbox;
  std::thread thread;
  std::atomic<bool> failed{false};
};

// What the listeners may use: both need CAP_NET_ADMIN.
struct ListenerPrivileges {
  bool transparent = true;  // IP_TRANSPARENT, so TPROXY-captured connections are accepted too
  bool mark = true;         // SO_MARK = PACKET_MARK
};

Result<proxy::WorkerListeners> makeListeners(const proxy::ProxyConfig& config,
                                             const ListenerPrivileges& privileges) {
  io::ListenerOptions options;
  if (privileges.mark && config.packetMark != 0) {
    options.mark = config.packetMark;
  }
  options.backlog = 1024;
  proxy::WorkerListeners listeners;
  struct Want {
    UniqueFd* fd;
    const SocketAddress* addr;
    const char* what;
    bool capture;  // a capture listener (SOCKS5 is plain loopback)
  };
  std::vector<Want> wants = {
      {&listeners.outbound, &config.outboundAddr, "outbound", true},
      {&listeners.inbound, &config.inboundAddr, "inbound HBONE", true},
      {&listeners.inboundPlaintext, &config.inboundPlaintextAddr, "inbound plaintext", true}};
  if (config.enableSocks5) {
    wants.push_back({&listeners.socks5, &config.socks5Addr, "SOCKS5", false});
  }
  for (auto& want : wants) {
    options.transparent = privileges.transparent && want.capture;
    auto fd = io::makeListener(*want.addr, options);
    if (!fd) {
      return fail(
          fd.error().withContext(std::string(want.what) + " listener on " + want.addr->toString()));
    }
    *want.fd = std::move(*fd);
  }
  return listeners;
}

// makeListeners, degrading without CAP_NET_ADMIN: first without IP_TRANSPARENT (TPROXY capture
// cannot work then; REDIRECT capture still does), then without SO_MARK. Says so once.
Result<proxy::WorkerListeners> makeListenersDegrading(const proxy::ProxyConfig& config,
                                                      ListenerPrivileges& privileges) {
  for (;;) {
    auto listeners = makeListeners(config, privileges);
    if (listeners || !listeners.error().is(io::IoErrc::kPermissionDenied)) {
      return listeners;
    }
    if (privileges.transparent) {
      privileges.transparent = false;
      ZT_WARN("listeners are not transparent (TPROXY capture unavailable): {}",
              listeners.error().message());
    } else if (privileges.mark) {
      privileges.mark = false;
      ZT_WARN("listeners carry no SO_MARK: {}", listeners.error().message());
    } else {
      return listeners;
    }
  }
}

}  // namespace

int runProxy(const Config& config) {
  // Signals go to the control loop's signalfd, never to a thread: block them before any thread
  // exists (the access logger starts one in log::init), since threads inherit the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  if (auto st = log::init(config.logFormat, config.logSpec); !st) {
    std::fprintf(stderr, "ztunnel: %s\n", st.error().message().c_str());
    return 2;
  }
  for (const auto& warning : config.warnings) {
    ZT_WARN("{}", warning);
  }
  if (!config.enableProxy) {
    return fatal(
        "ENABLE_PROXY=false: this build has no admin, metrics or readiness server to "
        "run without the proxy");
  }
  if (config.proxyMode != ProxyMode::kDedicated || !config.workloadInfo) {
    return fatal("only PROXY_MODE=dedicated with PROXY_WORKLOAD_INFO=ns/name/sa is supported");
  }
  if (!config.xdsAddress.empty()) {
    return fatal("XDS_ADDRESS=" + config.xdsAddress +
                 ": this build has no delta xDS client yet; leave XDS_ADDRESS empty and "
                 "configure workloads with LOCAL_XDS_PATH");
  }
  if (config.certDir.empty()) {
    return fatal(config.caAddress.empty()
                     ? "no certificate source: set WORKLOAD_CERT_DIR (--cert-dir) to a directory "
                       "made by `ztunnel certs issue`"
                     : "CA_ADDRESS=" + config.caAddress +
                           ": this build has no Istio CA client yet; use WORKLOAD_CERT_DIR");
  }

  if (auto limit = io::raiseFdLimit()) {
    ZT_DEBUG("file descriptor limit {}", *limit);
  }
  if (auto ring = io::probeIoUring(); !ring) {
    return fatal(ring.error().message());
  }
  auto kernelTls = tls::decideKernelTls(tls::KernelTlsWish::kAuto, tls::probeKernelTls());
  if (kernelTls.mode == tls::KernelTlsMode::kKernel) {
    // The probe and key export exist (tls/ktls.h), but the workers do not hand sessions over.
    ZT_INFO("kernel TLS: available, but this build keeps HBONE TLS in userspace (kernel offload "
            "is not wired into the datapath yet)");
  } else {
    tls::logKernelTlsDecision(kernelTls);
  }

  // State: the local YAML (watched) or inline LOCAL_XDS; otherwise empty (all passthrough).
  state::StateOptions stateOptions;
  stateOptions.network = config.network;
  stateOptions.clusterId = config.clusterId;
  state::StateStore stateStore(state::ProxyState::empty(stateOptions));
  std::unique_ptr<xds::LocalConfigWatcher> configWatcher;
  if (!config.localXdsPath.empty()) {
    auto watcher = xds::LocalConfigWatcher::create(
        config.localXdsPath, stateOptions,
        [&stateStore](std::shared_ptr<const state::ProxyState> next) {
          ZT_INFO("local config applied: {} workloads, {} services, {} policies",
                  next->workloads().size(), next->services().size(), next->policies().size());
          stateStore.publish(std::move(next));
        });
    if (!watcher) {
      return fatal(watcher.error().message());
    }
    if (auto st = (*watcher)->loadNow(); !st) {
      return fatal(st.error().message());
    }
    configWatcher = std::move(*watcher);
  } else if (!config.localXdsInline.empty()) {
    auto parsed = xds::parseLocalConfig(config.localXdsInline, "LOCAL_XDS");
    if (!parsed) {
      return fatal(parsed.error().message());
    }
    auto built = xds::buildState(*parsed, stateOptions, 1);
    if (!built) {
      return fatal(built.error().message());
    }
    stateStore.publish(std::move(*built));
  }

  // Identity: the workload certificate from the directory (watched).
  identity::CredentialStore credentials;
  tls::TlsOptions tlsOptions;
  tlsOptions.allowTls12 = config.tls12Enabled;
  tls::Identity expected = tls::Identity::make(config.trustDomain, config.workloadInfo->ns,
                                               config.workloadInfo->serviceAccount);
  identity::CertDirWatcher certWatcher(
      config.certDir, tlsOptions, expected,
      [&credentials](std::shared_ptr<const identity::WorkloadTls> next) {
        credentials.publish(std::move(next));
      });
  auto initialTls = certWatcher.load();
  if (!initialTls) {
    return fatal(initialTls.error().message());
  }
  ZT_INFO("workload identity {} (serial {}) from {}",
          (*initialTls)->credentials->identity().toUri(), (*initialTls)->credentials->serialHex(),
          config.certDir);
  credentials.publish(std::move(*initialTls));

  UniqueFd signalFd(::signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signalFd) {
    return fatal(systemError("signalfd").message());
  }

  const proxy::ProxyConfig proxyConfig = makeProxyConfig(config);
  proxy::ProxyInputs inputs{proxyConfig, stateStore, credentials};

  std::vector<std::unique_ptr<WorkerSlot>> workers;
  ListenerPrivileges listenerPrivileges;
  for (unsigned i = 0; i < config.workerThreads; ++i) {
    auto listeners = makeListenersDegrading(proxyConfig, listenerPrivileges);
    if (!listeners) {
      return fatal(listeners.error().message());
    }
    auto slot = std::make_unique<WorkerSlot>();
    auto mailbox = proxy::WorkerMailbox::create();
    if (!mailbox) {
      return fatal(mailbox.error().message());
    }
    slot->mailbox = std::move(*mailbox);
    std::promise<Status> started;
    auto startedFuture = started.get_future();
    WorkerSlot* raw = slot.get();
    slot->thread =
        std::thread([&inputs, raw, i, &started, listeners = std::move(*listeners)]() mutable {
          pthread_setname_np(pthread_self(), ("ztunnel-" + std::to_string(i)).c_str());
          auto worker = proxy::Worker::create(inputs, std::move(listeners), i, *raw->mailbox);
          if (!worker) {
            started.set_value(fail(std::move(worker).error()));
            return;
          }
          started.set_value(ok());
          if (Status st = (*worker)->run(); !st) {
            ZT_ERROR("worker {} failed: {}", i, st.error().message());
            raw->failed = true;
          }
        });
    Status st = startedFuture.get();
    workers.push_back(std::move(slot));
    if (!st) {
      for (auto& w : workers) {
        w->mailbox->requestStop();
        w->thread.join();
      }
      return fatal("worker " + std::to_string(i) + ": " + st.error().message());
    }
  }
  ZT_INFO("ztunnel ready: {} workers; outbound {}, inbound HBONE {}, inbound plaintext {}{}",
          workers.size(), proxyConfig.outboundAddr.toString(), proxyConfig.inboundAddr.toString(),
          proxyConfig.inboundPlaintextAddr.toString(),
          proxyConfig.enableSocks5 ? ", SOCKS5 " + proxyConfig.socks5Addr.toString() : "");

  // Control loop: signals, config and certificate changes.
  bool stopping = false;
  int exitCode = 0;
  while (!stopping) {
    pollfd fds[2] = {{signalFd.get(), POLLIN, 0},
                     {configWatcher ? configWatcher->fd() : -1, POLLIN, 0}};
    int n = ::poll(fds, 2, kControlPollMs);
    if (n < 0 && errno != EINTR) {
      exitCode = fatal(systemError("poll").message());
      break;
    }
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo info{};
      if (::read(signalFd.get(), &info, sizeof(info)) == sizeof(info)) {
        ZT_INFO(
            "received {}, draining for up to {} ms", strsignal(static_cast<int>(info.ssi_signo)),
            std::chrono::duration_cast<std::chrono::milliseconds>(config.selfTerminationDeadline)
                .count());
        stopping = true;
      }
    }
    if (configWatcher) {
      if (fds[1].revents & POLLIN) {
        configWatcher->handleEvents();
      } else {
        configWatcher->checkNow();  // missed or coalesced events
      }
    }
    certWatcher.poll();
    for (auto& w : workers) {
      if (w->failed) {
        exitCode = 1;
        stopping = true;
      }
    }
  }

  MonotonicTime deadline = monotonicNow() + config.selfTerminationDeadline;
  for (auto& w : workers) {
    w->mailbox->post([deadline](proxy::Worker& worker) { worker.drain(deadline); });
  }
  for (auto& w : workers) {
    w->thread.join();
  }
  ZT_INFO("ztunnel stopped");
  log::shutdown();
  return exitCode;
}

int runRedirect(const RedirectCommand& command) {
  if (auto st = log::init(log::Format::kText, "info"); !st) {
    return 2;
  }
  if (Status st = redirect::runRedirect(command.options); !st) {
    std::fprintf(stderr, "ztunnel redirect: %s\n", st.error().message().c_str());
    return 1;
  }
  return 0;
}

}  // namespace zt::app

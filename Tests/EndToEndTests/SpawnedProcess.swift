import Foundation

/// A child process started with posix_spawn and reaped with waitpid.
///
/// Foundation's `Process` notices a child's exit through a descriptor the child
/// inherits; systemd-socket-activate closes every descriptor it does not pass on, so
/// `Process` would take it for dead and block waiting for it. This does not.
final class SpawnedProcess: @unchecked Sendable {
    // `status` is written only by `poll()`, which the test calls from its own task.
    let pid: pid_t
    private var status: Int32?

    init(_ arguments: [String], environment: [String: String], stderrPath: String) throws {
        var fileActions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fileActions)
        defer { posix_spawn_file_actions_destroy(&fileActions) }
        posix_spawn_file_actions_addopen(&fileActions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&fileActions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&fileActions, 2, stderrPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Start with default signal handling and nothing blocked, whatever the test runner set.
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for argument in argv { free(argument) }
            for variable in envp { free(variable) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, arguments[0], &fileActions, &attributes, argv, envp)
        guard result == 0 else { throw POSIXError(POSIXErrorCode(rawValue: result) ?? .EINVAL) }
        self.pid = pid
    }

    /// Whether the child still runs; reaps it once it has exited.
    var isRunning: Bool {
        poll()
        return status == nil
    }

    /// The exit status (or 128 + signal), once it exited.
    var terminationStatus: Int32? {
        poll()
        return status
    }

    func signal(_ number: Int32) { kill(pid, number) }

    /// Waits up to `seconds` for the child to exit. - Returns: whether it did.
    func waitForExit(seconds: Double) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while isRunning && Date() < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        return !isRunning
    }

    private func poll() {
        guard status == nil else { return }
        var raw: Int32 = 0
        if waitpid(pid, &raw, WNOHANG) == pid {
            let signal = raw & 0x7f
            status = signal == 0 ? (raw >> 8) & 0xff : 128 + signal
        }
    }
}

#!/bin/sh
# More daemon scenarios, sourced by daemon.sh (which defines setup, create_home, start_session,
# end_session, hold_services, state_of, dm_of, loops_of, nothing_left, wait_for, say, fail).
#
#   login_btrfs          daemon-luks-login on btrfs
#   powercut_write       first boot of daemon-powercut-recover (never returns: qemu is killed)
#   powercut_verify      second boot of daemon-powercut-recover
#   interop_make         our daemon makes the home the real systemd-homed 252 activates

# The login scenario of daemon.sh with a btrfs home.
scenario_login_btrfs() {
    scenario_login vmbtrfs btrfs
}

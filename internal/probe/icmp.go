package probe

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// ICMP socket modes, reported in Values["icmp_mode"].
const (
	ICMPUnprivileged = "unprivileged" // SOCK_DGRAM: allowed when net.ipv4.ping_group_range holds the gid
	ICMPRaw          = "raw"          // SOCK_RAW: root or CAP_NET_RAW
)

// icmpTries echoes are sent at most, one every timeout/icmpTries, so that one lost packet
// does not make the host DOWN.
const icmpTries = 3

// listenICMP opens an echo socket in the requested mode, or the first that works.
func listenICMP(mode string, v6 bool) (*icmp.PacketConn, string, error) {
	dgram, raw, addr := "udp4", "ip4:icmp", "0.0.0.0"
	if v6 {
		dgram, raw, addr = "udp6", "ip6:ipv6-icmp", "::"
	}
	var errs []error
	if mode == "" || mode == ICMPUnprivileged {
		c, err := icmp.ListenPacket(dgram, addr)
		if err == nil {
			return c, ICMPUnprivileged, nil
		}
		errs = append(errs, fmt.Errorf("unprivileged ICMP: %w (is the gid in net.ipv4.ping_group_range?)", err))
	}
	if mode == "" || mode == ICMPRaw {
		c, err := icmp.ListenPacket(raw, addr)
		if err == nil {
			return c, ICMPRaw, nil
		}
		errs = append(errs, fmt.Errorf("raw ICMP: %w (needs root or CAP_NET_RAW)", err))
	}
	if len(errs) == 0 {
		return nil, "", fmt.Errorf("unknown ICMP mode %q (want %q or %q)", mode, ICMPUnprivileged, ICMPRaw)
	}
	return nil, "", errors.Join(errs...)
}

func runICMP(ctx context.Context, s *Spec, env *Env, o *observation, values map[string]string) error {
	ips, err := env.netResolver().LookupIPAddr(ctx, s.Target)
	if err != nil {
		return err
	}
	if len(ips) == 0 {
		return fmt.Errorf("%s %w", s.Target, errNoAddress)
	}
	ip := ips[0].IP
	for _, a := range ips {
		if a.IP.To4() != nil { // prefer IPv4, the path most hosts are watched on
			ip = a.IP
			break
		}
	}
	v6 := ip.To4() == nil
	conn, mode, err := listenICMP(env.ICMP, v6)
	if err != nil {
		return fmt.Errorf("%w: %w", errICMPSocket, err)
	}
	defer func() { _ = conn.Close() }()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	values["icmp_mode"] = mode

	var dst net.Addr = &net.IPAddr{IP: ip}
	if mode == ICMPUnprivileged {
		dst = &net.UDPAddr{IP: ip}
	}
	var echoType, replyType icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	proto := 1
	if v6 {
		echoType, replyType, proto = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply, 58
	}
	// A raw socket sees every echo reply on the host; the id and sequence pick out ours.
	// An unprivileged socket's id is replaced by the kernel, which filters for us.
	id := rand.IntN(1 << 16)
	seq0 := rand.IntN(1 << 15)
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(DefaultTimeout)
	}
	gap := time.Until(deadline) / icmpTries
	sent := map[int]time.Time{}
	buf := make([]byte, 1500)
	for try := range icmpTries {
		seq := (seq0 + try) & 0xffff
		msg := icmp.Message{Type: echoType, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("hinomi-probe")}}
		wb, err := msg.Marshal(nil)
		if err != nil {
			return err
		}
		if _, err := conn.WriteTo(wb, dst); err != nil {
			return fmt.Errorf("send echo (%s): %w", mode, err)
		}
		sent[seq] = time.Now()
		values["icmp_sent"] = strconv.Itoa(try + 1)
		wait := time.Now().Add(gap)
		if try == icmpTries-1 || wait.After(deadline) {
			wait = deadline
		}
		if err := conn.SetReadDeadline(wait); err != nil {
			return err
		}
		for {
			n, peer, err := conn.ReadFrom(buf)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break // send the next echo
				}
				return err
			}
			rm, err := icmp.ParseMessage(proto, buf[:n])
			if err != nil || rm.Type != replyType {
				continue
			}
			echo, ok := rm.Body.(*icmp.Echo)
			if !ok || (mode == ICMPRaw && echo.ID != id) {
				continue
			}
			t, ok := sent[echo.Seq]
			if !ok || !sameIP(peer, ip) {
				continue
			}
			o.responseTime, o.hasRT = time.Since(t), true
			o.connected = true
			o.ip = ip.String()
			return nil
		}
	}
	return fmt.Errorf("%w from %s after %d echoes", errNoEcho, ip, icmpTries)
}

func sameIP(a net.Addr, ip net.IP) bool {
	got := net.ParseIP(remoteIP(a))
	return got != nil && got.Equal(ip)
}
